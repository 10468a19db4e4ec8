-- Network policy from inventory: AWS security groups and managed prefix
-- lists are stored as resources (their rules in metadata_json), for
-- reachability and the configuration snapshot; they are not systems.
ALTER TYPE resource_type ADD VALUE IF NOT EXISTS 'security_group';
ALTER TYPE resource_type ADD VALUE IF NOT EXISTS 'prefix_list';
