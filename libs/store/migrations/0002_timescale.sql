-- TimescaleDB, when `migrate` decided to use it (storage.timescaledb: auto
-- uses it when the server has it preloaded; it sets psg.timescaledb = 'on'
-- for this transaction): data_flows and audit_logs become hypertables (with
-- compression and retention policies) instead of natively partitioned
-- tables. Otherwise this migration records that native partitioning is in
-- use and changes nothing.
--
-- A natively partitioned table cannot be converted in place, so each is
-- recreated empty as a plain table and turned into a hypertable; this runs
-- in the same transaction as its creation, before any row exists.

CREATE TABLE psg_settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);

DO $$
BEGIN
    IF current_setting('psg.timescaledb', true) = 'on' THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;

        DROP TABLE data_flows;
        CREATE TABLE data_flows (
            id                 uuid NOT NULL,
            source_resource_id uuid NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
            dest_resource_id   uuid NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
            protocol           varchar(8) NOT NULL,
            src_port           integer,
            dst_port           integer NOT NULL,
            packet_count       bigint NOT NULL DEFAULT 0,
            byte_count         bigint NOT NULL DEFAULT 0,
            flow_direction     varchar(16) NOT NULL,
            action             varchar(16) NOT NULL,
            observed_at        timestamptz NOT NULL DEFAULT now(),
            window_start       timestamptz NOT NULL,
            window_end         timestamptz NOT NULL,
            flow_count         bigint NOT NULL DEFAULT 0,
            first_seen         timestamptz NOT NULL,
            last_seen          timestamptz NOT NULL,
            PRIMARY KEY (id, observed_at)
        );
        CREATE INDEX ix_data_flows_source_resource_id ON data_flows (source_resource_id);
        CREATE INDEX ix_data_flows_dest_resource_id ON data_flows (dest_resource_id);
        CREATE INDEX idx_flow_src_dst ON data_flows (source_resource_id, dest_resource_id);
        CREATE INDEX idx_flow_dst_port ON data_flows (dst_port);
        CREATE INDEX idx_flow_observed_at ON data_flows (observed_at);
        PERFORM create_hypertable('data_flows', 'observed_at', chunk_time_interval => interval '1 day');
        EXECUTE 'ALTER TABLE data_flows SET (timescaledb.compress, timescaledb.compress_segmentby = ''source_resource_id'')';
        PERFORM add_compression_policy('data_flows', interval '7 days');
        PERFORM add_retention_policy('data_flows', interval '400 days');

        DROP TABLE audit_logs;
        CREATE TABLE audit_logs (
            id            uuid NOT NULL,
            user_id       varchar(255) NOT NULL,
            user_email    varchar(255) NOT NULL,
            user_ip       varchar(45),
            action        varchar(128) NOT NULL,
            resource_type varchar(64),
            resource_id   varchar(255),
            request_data  jsonb,
            response_data jsonb,
            success       boolean NOT NULL,
            error_message text,
            timestamp     timestamptz NOT NULL DEFAULT now(),
            duration_ms   integer,
            session_id    varchar(128),
            request_id    varchar(128),
            PRIMARY KEY (id, timestamp)
        );
        CREATE INDEX ix_audit_logs_user_id ON audit_logs (user_id);
        CREATE INDEX ix_audit_logs_action ON audit_logs (action);
        CREATE INDEX ix_audit_logs_resource_id ON audit_logs (resource_id);
        CREATE INDEX ix_audit_logs_success ON audit_logs (success);
        CREATE INDEX ix_audit_logs_timestamp ON audit_logs (timestamp);
        CREATE INDEX ix_audit_logs_request_id ON audit_logs (request_id);
        CREATE INDEX idx_audit_user_timestamp ON audit_logs (user_id, timestamp);
        CREATE INDEX idx_audit_action_success ON audit_logs (action, success);
        PERFORM create_hypertable('audit_logs', 'timestamp', chunk_time_interval => interval '7 days');
        -- Audit logs are compliance records: compressed, never dropped by policy.
        EXECUTE 'ALTER TABLE audit_logs SET (timescaledb.compress)';
        PERFORM add_compression_policy('audit_logs', interval '30 days');

        INSERT INTO psg_settings VALUES ('time_partitioning', 'timescaledb');
    ELSE
        INSERT INTO psg_settings VALUES ('time_partitioning', 'native');
    END IF;
END;
$$;
