-- PCI Scope Guard: one least-privilege PostgreSQL role per service.
--
-- Run it in the PCI Scope Guard database as a superuser (or, on a managed
-- service, the administrator role that has CREATEROLE and is a member of
-- psg_migrate), twice: once before the first `migrate` (it creates the
-- roles and lets psg_migrate create the schema), and again after every
-- `migrate` (it grants the table privileges; until the schema exists that
-- part is skipped with a notice). It is idempotent and resets each role's
-- privileges to exactly those below. See deploy/README.md, "Database roles".
--
--   psql "postgres://postgres@db/psg?sslmode=verify-full" -v ON_ERROR_STOP=1 -f deploy/postgres/roles.sql
--
-- The roles can log in but have no password: set one for each role a
-- service uses (psql's \password sends a SCRAM hash, never the password),
-- or map them to client certificates in pg_hba.conf.
--
-- | role          | used by                                      | may                                               |
-- |---------------|----------------------------------------------|---------------------------------------------------|
-- | psg_migrate   | `pci-scope-guard migrate`                     | own the schema: DDL, nothing else                 |
-- | psg_ingest    | ingest                                       | upsert resources, append tag versions             |
-- | psg_correlate | correlate                                    | insert referenced resources, upsert data_flows,   |
-- |               |                                              | write its checkpoints                             |
-- | psg_classify  | classify                                     | write decisions and alerts, read the graph        |
-- | psg_evidence  | evidence                                     | append evidence and keys, read report inputs      |
-- | psg_operator  | report, diagram, alerts, decide, replay,     | read; alert lifecycle; audit log; evidence        |
-- |               | evidence export/verify/expire/attest          | verification bookkeeping; DELETE expired evidence |
-- | psg_readonly  | assessors, dashboards                        | SELECT everything, read-only transactions         |
--
-- Objects are in schema public; this script assumes the search_path finds
-- them there.

-- Roles ---------------------------------------------------------------------

DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['psg_migrate', 'psg_ingest', 'psg_correlate', 'psg_classify', 'psg_evidence',
                             'psg_operator', 'psg_readonly'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I LOGIN', r);
        END IF;
        -- Whatever they were before: no special powers.
        EXECUTE format('ALTER ROLE %I NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', r);
    END LOOP;
END
$roles$;

-- Assessors never change anything, even by mistake.
ALTER ROLE psg_readonly SET default_transaction_read_only = on;

-- Database and schema ------------------------------------------------------

DO $db$
BEGIN
    -- Only the roles below (and superusers) may connect; nobody else may
    -- create temporary tables. GRANT CONNECT to any other role that needs it.
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO psg_migrate, psg_ingest, psg_correlate, psg_classify, '
                   'psg_evidence, psg_operator, psg_readonly', current_database());
    -- correlate stages data_flows rows in a temporary table for binary COPY.
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO psg_correlate', current_database());
END
$db$;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO psg_migrate;
GRANT USAGE ON SCHEMA public TO psg_ingest, psg_correlate, psg_classify, psg_evidence, psg_operator, psg_readonly;

-- Tables the schema owner creates later (new migrations, daily partitions)
-- are readable by the assessors at once.
ALTER DEFAULT PRIVILEGES FOR ROLE psg_migrate IN SCHEMA public GRANT SELECT ON TABLES TO psg_readonly;

-- Table privileges (once `migrate` has run) ---------------------------------

DO $grants$
DECLARE
    owner   name;
    schema_version integer;
BEGIN
    IF to_regclass('psg_schema_migrations') IS NOT NULL THEN
        -- (a statement of its own: it is planned only when the table exists)
        SELECT max(m.version) INTO schema_version FROM psg_schema_migrations m;
    END IF;
    -- (version 22: the newest object granted below, psg_log_inclusion)
    IF schema_version IS NULL OR schema_version < 22 THEN
        RAISE NOTICE 'roles.sql: the schema is not migrated (to version 22) yet: roles created; run '
                     '`pci-scope-guard migrate` as psg_migrate, then this script again for the table privileges';
        RETURN;
    END IF;
    SELECT tableowner INTO owner FROM pg_tables WHERE schemaname = 'public' AND tablename = 'evidence';
    IF owner <> 'psg_migrate' THEN
        RAISE WARNING 'roles.sql: the schema is owned by %, not psg_migrate: run migrate as psg_migrate '
                      '(the owner bypasses the evidence row policies and creates the daily partitions)', owner;
    END IF;

    -- Start from nothing, so a privilege dropped from this script is revoked.
    REVOKE ALL ON ALL TABLES IN SCHEMA public
        FROM psg_ingest, psg_correlate, psg_classify, psg_evidence, psg_operator, psg_readonly;
    REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public
        FROM psg_ingest, psg_correlate, psg_classify, psg_evidence, psg_operator, psg_readonly;

    -- Every role: the schema version and partitioning mode (checked at connect).
    GRANT SELECT ON psg_schema_migrations, psg_settings
        TO psg_ingest, psg_correlate, psg_classify, psg_evidence, psg_operator, psg_readonly;

    -- Daily partitions of data_flows/audit_logs: every service creates the
    -- next days' at start, correlate and the operator commands the day they
    -- write. The function runs as the schema owner (migration 0004).
    GRANT EXECUTE ON FUNCTION psg_ensure_daily_partition(regclass, date)
        TO psg_ingest, psg_correlate, psg_classify, psg_evidence, psg_operator;

    -- ingest: inventory observations (upsert, never delete: a deletion is is_active = false).
    GRANT SELECT, INSERT ON resources, tags TO psg_ingest;
    GRANT UPDATE (provider, resource_type, resource_arn, resource_name, vpc_id, subnet_id, availability_zone,
                  region, metadata, private_ip, public_ip, security_groups, discovered_at, last_seen_at,
                  is_active, private_ips, public_ips, interface_ids)
        ON resources TO psg_ingest;

    -- correlate: placeholder rows for resources its edges reference (insert
    -- if missing, never change), and data_flows (new rows by COPY; a batch
    -- with rows already there through a temporary table LIKE data_flows,
    -- then INSERT ... ON CONFLICT DO UPDATE of the counts).
    -- ON CONFLICT (resource_id) reads the key; each data_flows batch checks
    -- that the resources it names exist (id; migrations 0014, 0015)
    GRANT INSERT, SELECT (id, resource_id) ON resources TO psg_correlate;
    GRANT EXECUTE ON FUNCTION psg_require_resources(uuid[]) TO psg_correlate;
    GRANT SELECT, INSERT ON data_flows TO psg_correlate;
    GRANT UPDATE (packet_count, byte_count, flow_count, first_seen, last_seen, window_end,
                  encrypted_flow_count, unencrypted_flow_count, action_logged)
        ON data_flows TO psg_correlate;
    -- its checkpoints, written with the data_flows rows of each batch
    GRANT SELECT, INSERT, UPDATE ON correlate_checkpoints TO psg_correlate;

    -- classify: rebuilds its graph from decisions, flows and alert ids;
    -- writes decisions (retiring the previous one) and alerts: new ones,
    -- rewordings and resolutions only through psg_alert_event (migration
    -- 0006), never an operator's part of the lifecycle.
    GRANT SELECT, INSERT ON resources TO psg_classify;
    GRANT SELECT ON data_flows TO psg_classify;
    GRANT SELECT, INSERT ON scope_decisions TO psg_classify;
    GRANT UPDATE (is_current, superseded_by_id) ON scope_decisions TO psg_classify;
    GRANT SELECT, INSERT ON alerts TO psg_classify;
    GRANT EXECUTE ON FUNCTION psg_alert_event(uuid, text, text, text, text, uuid, timestamptz, text, jsonb)
        TO psg_classify;

    -- evidence: reads what its reports cover; appends records and keys.
    -- Records are insert-only: only the verification bookkeeping may
    -- change (also enforced by the evidence_immutable trigger), never DELETE.
    GRANT SELECT ON resources, tags, data_flows, scope_decisions, alerts TO psg_evidence;
    GRANT SELECT, INSERT ON evidence, evidence_keys TO psg_evidence;
    -- each batch checks that the decisions it names exist (migration 0020)
    GRANT EXECUTE ON FUNCTION psg_require_decisions(uuid[]) TO psg_evidence;
    GRANT UPDATE (last_verified_at, verification_count) ON evidence TO psg_evidence;
    -- the evidence log (migrations 0011, 0021): append-only, by grant and
    -- trigger; evidence_log is the view of its batches a leaf per row
    GRANT SELECT, INSERT ON evidence_log_batches, evidence_checkpoints TO psg_evidence;
    GRANT SELECT ON evidence_log TO psg_evidence;
    -- which computes the proofs a batch does not store (migration 0022);
    -- a view's functions run as its reader
    GRANT EXECUTE ON FUNCTION psg_log_inclusion(bigint, bytea, bytea, bigint, bigint),
                              psg_log_subtree(bigint, bytea, bytea, bigint, bigint)
        TO psg_evidence, psg_operator, psg_readonly;

    -- operator commands: report and diagram read; alerts ack/resolve/
    -- false-positive change the lifecycle columns only; every change is
    -- appended to audit_logs (never updated or deleted); evidence export
    -- reads, evidence verify records the verification, evidence expire
    -- deletes (row security: only records past expires_at).
    GRANT SELECT ON resources, tags, data_flows, scope_decisions, alerts, evidence, evidence_keys,
                    evidence_log, evidence_log_batches, evidence_checkpoints TO psg_operator;
    -- on TimescaleDB, the hourly aggregate of data_flows (migration 0017)
    IF to_regclass('data_flows_hourly') IS NOT NULL THEN
        GRANT SELECT ON data_flows_hourly TO psg_operator;
    END IF;
    GRANT UPDATE (status, acknowledged_at, acknowledged_by, resolved_at, resolved_by) ON alerts TO psg_operator;
    GRANT INSERT ON audit_logs TO psg_operator;
    GRANT UPDATE (last_verified_at, verification_count), DELETE ON evidence TO psg_operator;
    -- grc sync: a run is inserted in_progress, then finished (never deleted).
    GRANT SELECT, INSERT ON grc_syncs TO psg_operator;
    GRANT UPDATE (status, completed_at, resources_synced, errors_count, error_details, sync_metadata)
        ON grc_syncs TO psg_operator;

    -- assessors: everything, read only.
    GRANT SELECT ON ALL TABLES IN SCHEMA public TO psg_readonly;
END
$grants$;
