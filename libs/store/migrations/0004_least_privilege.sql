-- Least privilege: what the per-service roles of deploy/postgres/roles.sql
-- need from the schema itself. Harmless when every service connects as the
-- schema owner (the owner bypasses row security and may execute anything).

-- Daily partitions are created by whichever service writes a day's first
-- row, but CREATE TABLE ... PARTITION OF needs the parent's owner. So the
-- function runs as its owner (the role that ran `migrate`), with a fixed
-- search_path, only for the two natively partitioned tables, and only for
-- roles granted EXECUTE. The partition name is built from the parent's own
-- catalog name and a date (format %I / %L quote them): no caller text reaches
-- the statement.
CREATE OR REPLACE FUNCTION psg_ensure_daily_partition(parent regclass, day date) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    nsp  name;
    rel  name;
    part text;
BEGIN
    SELECT n.nspname, c.relname INTO nsp, rel
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = parent AND c.relkind = 'p';
    IF rel IS NULL OR rel NOT IN ('data_flows', 'audit_logs') THEN
        RAISE EXCEPTION 'psg_ensure_daily_partition: % is not a natively partitioned data_flows or audit_logs', parent;
    END IF;
    part := rel || '_p' || to_char(day, 'YYYYMMDD');
    IF to_regclass(format('%I.%I', nsp, part)) IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
                   nsp, part, nsp, rel, day::timestamptz, (day + 1)::timestamptz);
EXCEPTION
    WHEN duplicate_table OR unique_violation THEN
        NULL; -- another writer created it first
END;
$$;
REVOKE EXECUTE ON FUNCTION psg_ensure_daily_partition(regclass, date) FROM PUBLIC;

-- Evidence rows: besides the trigger of 0003 (no change but the
-- verification bookkeeping) and the table privileges (only the operator role
-- may DELETE), row security lets a DELETE reach only records past
-- expires_at. Policies apply to every role but the owner; table privileges
-- still decide who may run which command at all.
ALTER TABLE evidence ENABLE ROW LEVEL SECURITY;
CREATE POLICY evidence_read ON evidence FOR SELECT USING (true);
CREATE POLICY evidence_append ON evidence FOR INSERT WITH CHECK (true);
CREATE POLICY evidence_verification ON evidence FOR UPDATE USING (true) WITH CHECK (true);
CREATE POLICY evidence_expired_only ON evidence FOR DELETE USING (expires_at < now());
