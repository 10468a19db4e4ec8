-- ix_data_flows_source_resource_id (source_resource_id) is a prefix of
-- idx_flow_src_dst (source_resource_id, dest_resource_id): every lookup by
-- source can use the pair's index, and each extra index is written on
-- every data_flows row. Dropped on both native partitions and hypertables.

DROP INDEX IF EXISTS ix_data_flows_source_resource_id;
