-- The per-batch check that replaced data_flows' row-by-row foreign keys
-- (migration 0014), as a function of the resource ids a batch names: the
-- store collects the distinct ids of a batch (a few hundred for thousands
-- of rows) and asks once, so the rows themselves can go straight into
-- data_flows by COPY instead of through a staging table. Fails with
-- SQLSTATE 23503 (foreign_key_violation) naming up to five missing ids, as
-- a foreign key would.

CREATE OR REPLACE FUNCTION psg_require_resources(ids uuid[]) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE missing text;
BEGIN
    SELECT string_agg(id::text, ', ') INTO missing FROM (
        SELECT DISTINCT n.id FROM unnest(ids) AS n(id)
         WHERE NOT EXISTS (SELECT 1 FROM resources r WHERE r.id = n.id)
         ORDER BY n.id LIMIT 5) m;
    IF missing IS NOT NULL THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'data_flows rows name resources that are not in resources: ' || missing;
    END IF;
END $$;

-- Granted to the writer of data_flows only (deploy/postgres/roles.sql).
REVOKE EXECUTE ON FUNCTION psg_require_resources(uuid[]) FROM PUBLIC;
