-- On TimescaleDB: data_flows_hourly, a continuous aggregate of data_flows
-- per edge (source, destination, protocol, port, action) per hour of
-- observed_at (window start), which `report` and `diagram` read for the
-- hours it holds and whose rows all lie in the period they show
-- (psg_store::operator::edges_at). Only rows that carried flows count
-- (a withdrawn row, zeroed, does not); besides the period's ends it keeps
-- the latest first_seen and the earliest last_seen of its rows, so that a
-- reader can tell whether every row of an hour lies inside a period.
--
-- A refresh policy materializes it every 30 minutes up to an hour ago;
-- hours changed after they were materialized (a late window, a withdrawal,
-- a redelivered batch) are invalidated by TimescaleDB until the next
-- refresh, and the reader takes those hours from data_flows itself.
-- Native partitioning: nothing.

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM psg_settings WHERE key = 'time_partitioning' AND value = 'timescaledb')
       AND to_regclass('data_flows_hourly') IS NULL THEN
        EXECUTE $view$
            CREATE MATERIALIZED VIEW data_flows_hourly
                WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS
            SELECT time_bucket(INTERVAL '1 hour', observed_at) AS bucket,
                   source_resource_id, dest_resource_id, protocol, dst_port, action,
                   sum(flow_count)::int8 AS flow_count,
                   sum(encrypted_flow_count) FILTER (WHERE flow_count > 0)::int8 AS encrypted_flow_count,
                   sum(unencrypted_flow_count) FILTER (WHERE flow_count > 0)::int8 AS unencrypted_flow_count,
                   min(first_seen) FILTER (WHERE flow_count > 0) AS first_seen,
                   max(last_seen) FILTER (WHERE flow_count > 0) AS last_seen,
                   max(first_seen) FILTER (WHERE flow_count > 0) AS latest_first_seen,
                   min(last_seen) FILTER (WHERE flow_count > 0) AS earliest_last_seen
              FROM data_flows
             GROUP BY 1, 2, 3, 4, 5, 6
              WITH NO DATA
        $view$;
        PERFORM add_continuous_aggregate_policy('data_flows_hourly',
            start_offset => NULL, end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '30 minutes');
    END IF;
END;
$$;
