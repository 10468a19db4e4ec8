-- On TimescaleDB: data_flows chunks are compressed per edge (source,
-- destination, protocol, port) in time order, instead of per source only,
-- so that reading one edge's history (the report, the scope graph's
-- rebuild, a withdrawal) decompresses only that edge's segments. Chunks
-- compressed before keep their layout until recompressed; TimescaleDB
-- keeps compression settings per chunk. Native partitioning: nothing.

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM psg_settings WHERE key = 'time_partitioning' AND value = 'timescaledb') THEN
        EXECUTE 'ALTER TABLE data_flows SET (timescaledb.compress,
            timescaledb.compress_segmentby = ''source_resource_id, dest_resource_id, protocol, dst_port'',
            timescaledb.compress_orderby = ''observed_at DESC, id'')';
    END IF;
END;
$$;
