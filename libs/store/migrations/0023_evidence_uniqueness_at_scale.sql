-- Two of evidence's unique keys change how they are kept, for a table of
-- millions of rows (issue 20). What is unique stays unique.
--
-- hash is a SHA-256, 64 hex digits: each new row's key falls on a random
-- page of its index. The b-tree behind UNIQUE (hash) keeps the whole key in
-- each entry (243 MB at 2 million rows) and soon outgrows the buffer cache;
-- from then on each row written changes a page that is not in memory, and
-- after every checkpoint the first change to a page writes a full image of
-- it (8 KB) to the WAL. A hash index keeps a 4-byte hash code per entry (73
-- MB at 2 million rows); an exclusion constraint over it refuses a second
-- row with an equal hash as UNIQUE did (SQLSTATE 23P01 instead of 23505). No
-- query orders or ranges by hash; lookups by it are equality, which a hash
-- index serves.
--
-- scope_decision_id: a decision has one pci_scope_identification record
-- (the service makes it once, keyed by the decision; no other evidence type
-- names a decision), so its index becomes UNIQUE: the database now refuses
-- a second one. The evidence service's duplicate check looks records up by
-- decision (record ids are time-ordered now, and a record stored by an
-- earlier version has another id), one probe of this index per decision.
-- Rows naming no decision (the periodic reports) stay as many as they are:
-- NULLs are distinct.
--
-- Measured together with the service's time-ordered record ids (psql, 50
-- batches of 1,000 rows into a table of 2 million rows keyed the same way,
-- just after a checkpoint; the backend's CPU per row, which includes making
-- the rows, about 15 µs; two runs each):
--   random ids, b-tree on hash (before):       38.2, 37.2 µs; WAL 6.4 KB/row
--   time-ordered ids, b-tree on hash:           29.4, 30.4 µs; WAL 5.3 KB/row
--   time-ordered ids, this migration:           23.8, 24.6 µs; WAL 2.9 KB/row
-- The unique index on scope_decision_id costs what the plain one did
-- (15.1-15.5 µs per row against 15.3, into an empty table).
--
-- Both indexes are built by a scan of the table, under a lock that holds
-- writes back: budget a minute or so per ten million rows.

DO $$
DECLARE
    key name;
    twice text;
BEGIN
    SELECT string_agg(scope_decision_id::text, ', ') INTO twice FROM (
        SELECT scope_decision_id FROM evidence WHERE scope_decision_id IS NOT NULL
         GROUP BY scope_decision_id HAVING count(*) > 1 ORDER BY scope_decision_id LIMIT 5) d;
    IF twice IS NOT NULL THEN
        RAISE unique_violation USING
            MESSAGE = 'evidence has more than one record for scope decisions ' || twice
                      || ': the evidence service makes one per decision, and this migration '
                      || 'makes that a unique index; find where the others came from first';
    END IF;
    FOR key IN SELECT c.conname FROM pg_constraint c
                WHERE c.conrelid = 'evidence'::regclass AND c.contype = 'u'
                  AND c.conkey = ARRAY[(SELECT attnum FROM pg_attribute
                                         WHERE attrelid = 'evidence'::regclass AND attname = 'hash')] LOOP
        EXECUTE format('ALTER TABLE evidence DROP CONSTRAINT %I', key);
    END LOOP;
END $$;

ALTER TABLE evidence ADD CONSTRAINT evidence_hash_unique EXCLUDE USING hash (hash WITH =);

DROP INDEX IF EXISTS ix_evidence_scope_decision_id;
CREATE UNIQUE INDEX ix_evidence_scope_decision_id ON evidence (scope_decision_id);
