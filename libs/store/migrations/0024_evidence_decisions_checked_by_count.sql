-- psg_require_decisions (migration 0020) answers the usual case, every
-- decision named is there, with one count over scope_decisions' primary
-- key (`id = ANY`, an index-only scan where the pages are all-visible)
-- instead of an anti-join of the ids with a DISTINCT and a sort. Only when
-- the count falls short (an id missing, repeated or NULL) does it run the
-- anti-join, which names the missing decisions as before. The count cannot
-- reach cardinality(ids) unless the ids are distinct, not NULL and all
-- there: it counts rows of scope_decisions, each at most once.
--
-- Measured (psql, 100 calls of 1,000 ids each into 200,000 decisions,
-- vacuumed, three passes each): 1.35-1.48 µs per id with the anti-join,
-- 1.04-1.18 µs with the count first (issue 20: the check is per record).
-- The function keeps its grants (CREATE OR REPLACE).

CREATE OR REPLACE FUNCTION psg_require_decisions(ids uuid[]) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE missing text;
BEGIN
    IF (SELECT count(*) FROM scope_decisions d WHERE d.id = ANY (ids)) = cardinality(ids) THEN
        RETURN;
    END IF;
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
