-- GCP VPC firewall rules are stored as resources (the rule in
-- metadata_json), for reachability and the configuration snapshot; they are
-- not systems.
ALTER TYPE resource_type ADD VALUE IF NOT EXISTS 'firewall_rule';
