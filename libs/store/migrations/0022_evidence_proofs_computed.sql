-- The evidence log's batch rows stop storing every leaf's inclusion proof
-- when the proofs follow from the batch itself (issue 20). A batch of the
-- service's is first covered by its own checkpoint: the tree of size
-- first_index + cardinality(evidence_ids). Every node of that tree lies
-- inside the batch, straddles its start, or is one of the complete subtrees
-- left of it, the ones the binary digits of first_index name (13 = 8 + 4 +
-- 1: leaves [0, 8), [8, 12), [12, 13)). Those subtrees' hashes, at most 64,
-- and the batch's leaves give every proof, as RFC 6962 defines it.
--
-- A batch row holds 1,000 proofs of 18-20 hashes: about 600 KB, which
-- PostgreSQL cuts into some 300 TOAST rows. Measured (cargo bench --bench
-- evidence_throughput, 200,000 records, pg_stat_statements): the batch
-- rows' COPY took 8.1 µs per record, a third as much as the evidence rows'.
-- With the subtrees instead, a row is about 50 KB (ids and hashes).
--
-- left_subtrees: those hashes, 32 bytes each, largest subtree first; the
-- row then has no inclusion (NULL). Rows stored before, and any run that
-- does not end at its checkpoint, keep their proofs in inclusion as
-- before. The writer (psg_store::evidence) leaves the proofs out only when
-- the batch's leaves and subtrees give the root of the checkpoint written
-- with it, or else every proof they give is the one it was given; readers
-- compute them back. evidence_log's inclusion column
-- computes them in SQL (psg_log_inclusion): fine for a few leaves, slow for
-- a scan of many (about a thousand hashes per leaf).

ALTER TABLE evidence_log_batches
    ADD COLUMN left_subtrees bytea,
    ALTER COLUMN inclusion DROP NOT NULL;

ALTER TABLE evidence_log_batches DROP CONSTRAINT evidence_log_batches_shape;
ALTER TABLE evidence_log_batches
    ADD CONSTRAINT evidence_log_batches_shape CHECK (
        array_ndims(evidence_ids) = 1 AND cardinality(evidence_ids) > 0
        AND length(record_hashes) = 32 * cardinality(evidence_ids)
        AND checkpoint_size >= first_index + cardinality(evidence_ids)),
    ADD CONSTRAINT evidence_log_batches_proofs CHECK (
        CASE WHEN left_subtrees IS NULL
             THEN inclusion IS NOT NULL AND array_ndims(inclusion) = 1
                  AND cardinality(inclusion) = cardinality(evidence_ids)
             ELSE inclusion IS NULL
                  AND checkpoint_size = first_index + cardinality(evidence_ids)
                  AND length(left_subtrees) = 32 * bit_count(first_index::bit(64))
        END);

-- The hash of leaves [s, e) of the tree that a batch row's checkpoint
-- signs: a subtree left of the batch, a leaf of it, or a node made of two.
CREATE FUNCTION psg_log_subtree(first_index bigint, record_hashes bytea, left_subtrees bytea, s bigint, e bigint)
RETURNS bytea LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    k bigint := 1;
    start bigint := 0;
    at int := 0;
BEGIN
    IF e <= first_index THEN
        FOR b IN REVERSE 62..0 LOOP
            IF (first_index >> b) & 1 = 1 THEN
                IF start = s AND start + (1::bigint << b) = e THEN
                    RETURN substring(left_subtrees FROM at * 32 + 1 FOR 32);
                END IF;
                start := start + (1::bigint << b);
                at := at + 1;
            END IF;
        END LOOP;
        RAISE EXCEPTION 'leaves % to % are not a complete subtree left of leaf %', s, e, first_index;
    END IF;
    IF e - s = 1 THEN
        RETURN sha256('\x00'::bytea || substring(record_hashes FROM ((s - first_index) * 32 + 1)::int FOR 32));
    END IF;
    WHILE k * 2 < e - s LOOP
        k := k * 2;
    END LOOP;
    RETURN sha256('\x01'::bytea
                  || psg_log_subtree(first_index, record_hashes, left_subtrees, s, s + k)
                  || psg_log_subtree(first_index, record_hashes, left_subtrees, s + k, e));
END $$;

-- The inclusion proof of leaf `leaf` in the tree of `tree_size` leaves
-- (RFC 6962's audit path, from the leaf up, 32 bytes a hash).
CREATE FUNCTION psg_log_inclusion(first_index bigint, record_hashes bytea, left_subtrees bytea, tree_size bigint,
                                  leaf bigint)
RETURNS bytea LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    s bigint := 0;
    e bigint := tree_size;
    k bigint;
    proof bytea := ''::bytea;
BEGIN
    WHILE e - s > 1 LOOP
        k := 1;
        WHILE k * 2 < e - s LOOP
            k := k * 2;
        END LOOP;
        IF leaf < s + k THEN
            proof := psg_log_subtree(first_index, record_hashes, left_subtrees, s + k, e) || proof;
            e := s + k;
        ELSE
            proof := psg_log_subtree(first_index, record_hashes, left_subtrees, s, s + k) || proof;
            s := s + k;
        END IF;
    END LOOP;
    RETURN proof;
END $$;

CREATE OR REPLACE VIEW evidence_log AS
SELECT b.first_index + u.o - 1 AS log_index,
       u.evidence_id,
       encode(substring(b.record_hashes FROM (u.o * 32 - 31)::int FOR 32), 'hex') AS record_hash,
       b.checkpoint_size,
       CASE WHEN b.left_subtrees IS NULL THEN b.inclusion[u.o]
            ELSE psg_log_inclusion(b.first_index, b.record_hashes, b.left_subtrees, b.checkpoint_size,
                                   b.first_index + u.o - 1)
       END AS inclusion
  FROM evidence_log_batches b,
       unnest(b.evidence_ids) WITH ORDINALITY AS u(evidence_id, o);
