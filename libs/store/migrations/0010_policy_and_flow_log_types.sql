-- GCP VPC firewall rules and AWS network ACLs are stored as resources (their
-- rules in metadata_json), for reachability and the configuration snapshot;
-- so are flow-log configurations (AWS::EC2::FlowLog), compared with the
-- flow logs that arrive. None of them is a system.
ALTER TYPE resource_type ADD VALUE IF NOT EXISTS 'firewall_rule';
ALTER TYPE resource_type ADD VALUE IF NOT EXISTS 'network_acl';
ALTER TYPE resource_type ADD VALUE IF NOT EXISTS 'flow_log';
