-- evidence's row-by-row foreign key to scope_decisions becomes a check per
-- batch, and its two time indexes become BRIN indexes: the evidence write
-- is what limits the evidence service (issue 20), and these were the
-- largest parts of PostgreSQL's work per row that no query needs.
--
-- The foreign key. Each row inserted fired a referential-integrity
-- trigger: a query on scope_decisions per row, and a row lock (FOR KEY
-- SHARE) on the decision, which dirties its page and is written to the
-- WAL. Measured (psql, 50,000 evidence rows in batches of 1,000, the
-- backend's CPU time, three runs each): 0.95-1.02 s with the key, 0.63 s
-- without, 0.70-0.75 s with the per-batch check below instead; with the
-- log's leaves too, 1.18-1.27 s before this migration and 0.85-0.97 s
-- after it. The guarantee stays, as with data_flows (migrations 0014, 0015):
--   * the store's evidence write asks psg_require_decisions, in the same
--     transaction and after its rows are in, whether every decision the
--     batch names exists, and fails with SQLSTATE 23503
--     (foreign_key_violation) naming them otherwise;
--   * ON DELETE CASCADE stays: deleting a decision deletes its evidence
--     (the evidence log keeps the records' leaves, as before). The
--     statement first takes a SHARE ROW EXCLUSIVE lock on evidence, so it
--     waits for evidence writes in flight, whose rows its cascade then
--     sees, and a write that starts meanwhile waits for it and then finds
--     the decision gone: no record is left naming a deleted decision;
--   * changing a referenced decision's id is refused, as NO ACTION would.
-- No service deletes decisions or changes their ids (deploy/postgres/
-- roles.sql grants neither); the triggers run only for the owner's
-- statements, and only those that delete or set id.
--
-- The time indexes. generated_at is the decision's time (classify's clock
-- when it decided) or the report's, and expires_at is generated_at plus
-- seven years, so both grow with the order rows are written in: a BRIN
-- index (the least and greatest value of each 128 pages) finds a range of
-- them as a b-tree would, at almost no cost per row written, and is a few
-- pages instead of a b-tree the size of the column. Queries by range
-- (evidence export and verify by generated_at, evidence expire by
-- expires_at) use it; none orders by these columns through an index.
-- autosummarize summarizes each 128 pages once they fill, not only at
-- VACUUM. Rebuilding them takes a scan of the table, under a lock that
-- holds writes back: seconds per million rows.

DO $$
DECLARE key name;
BEGIN
    FOR key IN SELECT conname FROM pg_constraint
                WHERE conrelid = 'evidence'::regclass AND contype = 'f'
                  AND confrelid = 'scope_decisions'::regclass LOOP
        EXECUTE format('ALTER TABLE evidence DROP CONSTRAINT %I', key);
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION psg_require_decisions(ids uuid[]) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE missing text;
BEGIN
    SELECT string_agg(id::text, ', ') INTO missing FROM (
        SELECT DISTINCT n.id FROM unnest(ids) AS n(id)
         WHERE n.id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM scope_decisions d WHERE d.id = n.id)
         ORDER BY n.id LIMIT 5) m;
    IF missing IS NOT NULL THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'evidence rows name scope decisions that are not in scope_decisions: ' || missing;
    END IF;
END $$;

-- Granted to the writer of evidence only (deploy/postgres/roles.sql).
REVOKE EXECUTE ON FUNCTION psg_require_decisions(uuid[]) FROM PUBLIC;

-- The referencing side of the old key, on scope_decisions. SECURITY
-- DEFINER as the key's own triggers were: they act as the owner whoever
-- deletes.
CREATE FUNCTION psg_scope_decisions_hold_evidence() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    LOCK TABLE evidence IN SHARE ROW EXCLUSIVE MODE;
    RETURN NULL;
END $$;

CREATE FUNCTION psg_scope_decisions_cascade() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM evidence WHERE scope_decision_id = OLD.id;
        RETURN OLD;
    END IF;
    IF NEW.id IS DISTINCT FROM OLD.id
       AND EXISTS (SELECT 1 FROM evidence WHERE scope_decision_id = OLD.id) THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'scope decision ' || OLD.id || ' is named by evidence: its id cannot change';
    END IF;
    RETURN NEW;
END $$;

REVOKE EXECUTE ON FUNCTION psg_scope_decisions_hold_evidence() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION psg_scope_decisions_cascade() FROM PUBLIC;

CREATE TRIGGER scope_decisions_hold_evidence BEFORE DELETE OR UPDATE OF id ON scope_decisions
    FOR EACH STATEMENT EXECUTE FUNCTION psg_scope_decisions_hold_evidence();
CREATE TRIGGER scope_decisions_cascade AFTER DELETE OR UPDATE OF id ON scope_decisions
    FOR EACH ROW EXECUTE FUNCTION psg_scope_decisions_cascade();

DROP INDEX IF EXISTS idx_evidence_generated_at;
DROP INDEX IF EXISTS idx_evidence_expires_at;
CREATE INDEX idx_evidence_generated_at ON evidence USING brin (generated_at) WITH (autosummarize = on);
CREATE INDEX idx_evidence_expires_at ON evidence USING brin (expires_at) WITH (autosummarize = on);
