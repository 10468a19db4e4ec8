-- GCP VPC firewall rules and AWS network ACLs are stored as resources (their
-- rules in metadata_json), for reachability and the configuration snapshot;
-- they are not systems.
ALTER TYPE resource_type ADD VALUE IF NOT EXISTS 'firewall_rule';
ALTER TYPE resource_type ADD VALUE IF NOT EXISTS 'network_acl';
