-- PCI Scope Guard schema v1: every table and enum of the seed data model.
--
-- Differences from the seed, and why:
-- * timestamps are timestamptz (UTC instants, not naive local times);
-- * resource_type has the types attribution needs (network_interface,
--   nat_gateway, ecs_task, host, unknown_host, external_endpoint);
-- * resources keep every address and interface (private_ips, public_ips,
--   interface_ids), not only one;
-- * tags keep one row per version (the audit trail), unique per
--   (resource_id, key, version);
-- * data_flows has flow_count, first_seen, last_seen; its primary key is
--   (id, observed_at) because it is partitioned by observed_at;
-- * evidence.scope_decision_id is nullable (periodic attestations belong to
--   no single decision) and evidence has chain, sequence and prev_hash;
-- * audit_logs' primary key is (id, timestamp) because it is partitioned.

CREATE TYPE cloud_provider AS ENUM ('aws', 'azure', 'gcp', 'on_premise');
CREATE TYPE resource_type AS ENUM (
    'ec2_instance', 'rds_instance', 'lambda_function', 'elastic_load_balancer', 's3_bucket',
    'ecs_service', 'eks_cluster', 'virtual_machine', 'sql_database', 'app_service',
    'storage_account', 'compute_instance', 'cloud_sql', 'cloud_function', 'gke_cluster',
    'network_interface', 'nat_gateway', 'ecs_task', 'host', 'unknown_host', 'external_endpoint');
CREATE TYPE pci_scope AS ENUM ('cde', 'connected-cde', 'out-of-scope', 'pending-review');
CREATE TYPE data_classification AS ENUM ('stores-cardholder', 'processes-cardholder', 'transmits-cardholder');
CREATE TYPE evidence_type AS ENUM (
    'pci_scope_identification', 'network_segmentation_validation', 'data_flow_analysis',
    'tag_audit_trail', 'configuration_snapshot');

CREATE TABLE resources (
    id                uuid PRIMARY KEY,
    provider          cloud_provider NOT NULL,
    resource_type     resource_type NOT NULL,
    resource_id       varchar(255) NOT NULL UNIQUE,
    resource_arn      varchar(512),
    resource_name     varchar(255),
    vpc_id            varchar(128),
    subnet_id         varchar(128),
    availability_zone varchar(64),
    region            varchar(64),
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    private_ip        varchar(45),
    public_ip         varchar(45),
    security_groups   jsonb DEFAULT '[]'::jsonb,
    discovered_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at      timestamptz NOT NULL DEFAULT now(),
    is_active         boolean DEFAULT true,
    private_ips       text[] NOT NULL DEFAULT '{}',
    public_ips        text[] NOT NULL DEFAULT '{}',
    interface_ids     text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX ix_resources_provider ON resources (provider);
CREATE INDEX ix_resources_resource_type ON resources (resource_type);
CREATE INDEX ix_resources_vpc_id ON resources (vpc_id);
CREATE INDEX ix_resources_region ON resources (region);
CREATE INDEX ix_resources_is_active ON resources (is_active);
CREATE INDEX idx_resource_provider_type ON resources (provider, resource_type);
CREATE INDEX idx_resource_vpc_active ON resources (vpc_id, is_active);
CREATE INDEX idx_resource_discovered_at ON resources (discovered_at);

CREATE TABLE tags (
    id             uuid PRIMARY KEY,
    resource_id    uuid NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    key            varchar(255) NOT NULL,
    value          text NOT NULL,
    source         varchar(64) NOT NULL DEFAULT 'manual',
    applied_at     timestamptz NOT NULL DEFAULT now(),
    applied_by     varchar(255) NOT NULL,
    version        integer NOT NULL DEFAULT 1,
    previous_value text,
    UNIQUE (resource_id, key, version)
);
CREATE INDEX ix_tags_resource_id ON tags (resource_id);
CREATE INDEX ix_tags_key ON tags (key);
CREATE INDEX idx_tag_key_value ON tags (key, value);
CREATE INDEX idx_tag_resource_key ON tags (resource_id, key);

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
) PARTITION BY RANGE (observed_at);
CREATE INDEX ix_data_flows_source_resource_id ON data_flows (source_resource_id);
CREATE INDEX ix_data_flows_dest_resource_id ON data_flows (dest_resource_id);
CREATE INDEX idx_flow_src_dst ON data_flows (source_resource_id, dest_resource_id);
CREATE INDEX idx_flow_dst_port ON data_flows (dst_port);
CREATE INDEX idx_flow_observed_at ON data_flows (observed_at);

CREATE TABLE scope_decisions (
    id                      uuid PRIMARY KEY,
    resource_id             uuid NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    scope                   pci_scope NOT NULL,
    data_classification     data_classification,
    segment                 varchar(64),
    justification           text NOT NULL,
    confidence_score        jsonb,
    decided_at              timestamptz NOT NULL DEFAULT now(),
    decided_by              varchar(255) NOT NULL,
    decision_method         varchar(64) NOT NULL,
    is_current              boolean NOT NULL DEFAULT true,
    superseded_by_id        uuid REFERENCES scope_decisions (id),
    dependency_resource_ids jsonb DEFAULT '[]'::jsonb
);
CREATE INDEX ix_scope_decisions_resource_id ON scope_decisions (resource_id);
CREATE INDEX ix_scope_decisions_scope ON scope_decisions (scope);
CREATE INDEX ix_scope_decisions_decided_at ON scope_decisions (decided_at);
CREATE INDEX ix_scope_decisions_is_current ON scope_decisions (is_current);
CREATE INDEX idx_scope_decision_resource_current ON scope_decisions (resource_id, is_current);
CREATE INDEX idx_scope_decision_scope ON scope_decisions (scope, is_current);
-- At most one current decision per resource.
CREATE UNIQUE INDEX uq_scope_decision_current ON scope_decisions (resource_id) WHERE is_current;

CREATE TABLE evidence (
    id                 uuid PRIMARY KEY,
    scope_decision_id  uuid REFERENCES scope_decisions (id) ON DELETE CASCADE,
    evidence_type      evidence_type NOT NULL,
    data               jsonb NOT NULL,
    hash               varchar(64) NOT NULL UNIQUE,
    signature          text NOT NULL,
    signing_key_id     varchar(128) NOT NULL,
    storage_url        varchar(512),
    pci_requirement    varchar(16),
    generated_at       timestamptz NOT NULL DEFAULT now(),
    generated_by       varchar(255) NOT NULL,
    expires_at         timestamptz NOT NULL,
    last_verified_at   timestamptz,
    verification_count integer NOT NULL DEFAULT 0,
    chain              varchar(64) NOT NULL,
    sequence           bigint NOT NULL,
    prev_hash          varchar(64),
    UNIQUE (chain, sequence)
);
CREATE INDEX ix_evidence_scope_decision_id ON evidence (scope_decision_id);
CREATE INDEX ix_evidence_evidence_type ON evidence (evidence_type);
CREATE INDEX ix_evidence_pci_requirement ON evidence (pci_requirement);
CREATE INDEX ix_evidence_generated_at ON evidence (generated_at);
CREATE INDEX idx_evidence_type_requirement ON evidence (evidence_type, pci_requirement);
CREATE INDEX idx_evidence_generated_at ON evidence (generated_at);

CREATE TABLE grc_syncs (
    id               uuid PRIMARY KEY,
    provider         varchar(64) NOT NULL,
    sync_type        varchar(64) NOT NULL,
    status           varchar(32) NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    resources_synced integer NOT NULL DEFAULT 0,
    errors_count     integer NOT NULL DEFAULT 0,
    error_details    jsonb DEFAULT '[]'::jsonb,
    sync_metadata    jsonb DEFAULT '{}'::jsonb
);
CREATE INDEX ix_grc_syncs_provider ON grc_syncs (provider);
CREATE INDEX ix_grc_syncs_status ON grc_syncs (status);
CREATE INDEX idx_grc_sync_provider_status ON grc_syncs (provider, status);

CREATE TABLE alerts (
    id              uuid PRIMARY KEY,
    severity        varchar(16) NOT NULL,
    alert_type      varchar(64) NOT NULL,
    title           varchar(255) NOT NULL,
    description     text NOT NULL,
    resource_id     uuid REFERENCES resources (id) ON DELETE CASCADE,
    triggered_at    timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    acknowledged_by varchar(255),
    resolved_at     timestamptz,
    resolved_by     varchar(255),
    status          varchar(32) NOT NULL DEFAULT 'open',
    context         jsonb DEFAULT '{}'::jsonb
);
CREATE INDEX ix_alerts_severity ON alerts (severity);
CREATE INDEX ix_alerts_alert_type ON alerts (alert_type);
CREATE INDEX ix_alerts_resource_id ON alerts (resource_id);
CREATE INDEX ix_alerts_triggered_at ON alerts (triggered_at);
CREATE INDEX ix_alerts_status ON alerts (status);
CREATE INDEX idx_alert_severity_status ON alerts (severity, status);
CREATE INDEX idx_alert_type_triggered ON alerts (alert_type, triggered_at);

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
) PARTITION BY RANGE (timestamp);
CREATE INDEX ix_audit_logs_user_id ON audit_logs (user_id);
CREATE INDEX ix_audit_logs_action ON audit_logs (action);
CREATE INDEX ix_audit_logs_resource_id ON audit_logs (resource_id);
CREATE INDEX ix_audit_logs_success ON audit_logs (success);
CREATE INDEX ix_audit_logs_timestamp ON audit_logs (timestamp);
CREATE INDEX ix_audit_logs_request_id ON audit_logs (request_id);
CREATE INDEX idx_audit_user_timestamp ON audit_logs (user_id, timestamp);
CREATE INDEX idx_audit_action_success ON audit_logs (action, success);

-- Daily partitions for the time-partitioned tables (native partitioning).
-- Safe to call concurrently and repeatedly.
CREATE FUNCTION psg_ensure_daily_partition(parent regclass, day date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    part text := format('%s_p%s', parent::text, to_char(day, 'YYYYMMDD'));
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                   part, parent::text, day::timestamptz, (day + 1)::timestamptz);
EXCEPTION
    WHEN duplicate_table OR unique_violation THEN
        NULL; -- another writer created it first
END;
$$;
