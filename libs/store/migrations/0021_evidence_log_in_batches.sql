-- The evidence log's leaves are kept one row per run of leaves that the
-- same checkpoint first covers (a batch of the service's: about a thousand
-- leaves), instead of one row per leaf; each evidence row names its place
-- in the log (evidence.log_index). Issue 20: a row per leaf cost
-- PostgreSQL a heap row and two b-tree entries (log_index, evidence_id)
-- per record. Measured (psql, 50,000 records in batches of 1,000, with
-- migration 0020, the backend's CPU time, three runs each): 0.85-0.97 s
-- with a row per leaf, 0.77-0.90 s with a row per batch (alternated runs;
-- the batch row cost 7-10 % less in each).
--
-- A batch row holds, in log order from first_index: the records' ids, their
-- SHA-256 hashes (the leaves, 32 bytes each, concatenated), the size of the
-- checkpoint that first covers them and each one's inclusion proof against
-- it (its hashes' bytes, 32 each). Runs never overlap (the exclusion
-- constraint) and are append-only, like the leaves before them (grant and
-- trigger). evidence_log stays, as a view with a row per leaf as before,
-- for people and scripts that read it; the service and the operator
-- commands read evidence_log_batches.
--
-- Existing leaves are regrouped by the checkpoint that first covers them
-- (always a contiguous run), and evidence rows get their log_index from
-- them: an UPDATE of every logged evidence row, which rewrites the table
-- once (budget minutes per ten million records). log_index then joins the
-- columns evidence_immutable keeps from changing. It has no index: it is
-- read through the row (by id), and a log index is found in
-- evidence_log_batches.

CREATE TABLE evidence_log_batches (
    first_index     bigint PRIMARY KEY CHECK (first_index >= 0),
    evidence_ids    uuid[] NOT NULL,
    record_hashes   bytea NOT NULL,
    checkpoint_size bigint NOT NULL,
    inclusion       bytea[] NOT NULL,
    CONSTRAINT evidence_log_batches_shape CHECK (
        array_ndims(evidence_ids) = 1 AND cardinality(evidence_ids) > 0
        AND length(record_hashes) = 32 * cardinality(evidence_ids)
        AND array_ndims(inclusion) = 1 AND cardinality(inclusion) = cardinality(evidence_ids)
        AND checkpoint_size >= first_index + cardinality(evidence_ids)),
    CONSTRAINT evidence_log_batches_disjoint
        EXCLUDE USING gist ((int8range(first_index, first_index + cardinality(evidence_ids))) WITH &&)
);
-- Hashes do not compress: stored out of line without trying.
ALTER TABLE evidence_log_batches
    ALTER COLUMN evidence_ids SET STORAGE EXTERNAL,
    ALTER COLUMN record_hashes SET STORAGE EXTERNAL,
    ALTER COLUMN inclusion SET STORAGE EXTERNAL;

CREATE FUNCTION psg_proofs_are_hashes(proofs bytea[]) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT coalesce(bool_and(p IS NOT NULL AND length(p) % 32 = 0), true) FROM unnest(proofs) AS u(p)
$$;
ALTER TABLE evidence_log_batches
    ADD CONSTRAINT evidence_log_batches_inclusion_hashes CHECK (psg_proofs_are_hashes(inclusion));

CREATE TRIGGER evidence_log_batches_append_only BEFORE UPDATE OR DELETE ON evidence_log_batches
    FOR EACH ROW EXECUTE FUNCTION psg_append_only();

INSERT INTO evidence_log_batches (first_index, evidence_ids, record_hashes, checkpoint_size, inclusion)
SELECT min(log_index), array_agg(evidence_id ORDER BY log_index),
       string_agg(decode(record_hash, 'hex'), ''::bytea ORDER BY log_index),
       checkpoint_size, array_agg(inclusion ORDER BY log_index)
  FROM evidence_log
 GROUP BY checkpoint_size;

ALTER TABLE evidence ADD COLUMN log_index bigint CHECK (log_index >= 0);
UPDATE evidence e SET log_index = l.log_index FROM evidence_log l WHERE l.evidence_id = e.id;

CREATE OR REPLACE FUNCTION psg_evidence_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.id, NEW.scope_decision_id, NEW.evidence_type, NEW.data, NEW.hash, NEW.signature,
        NEW.signing_key_id, NEW.storage_url, NEW.pci_requirement, NEW.generated_at, NEW.generated_by,
        NEW.expires_at, NEW.chain, NEW.sequence, NEW.prev_hash, NEW.log_index)
       IS DISTINCT FROM
       (OLD.id, OLD.scope_decision_id, OLD.evidence_type, OLD.data, OLD.hash, OLD.signature,
        OLD.signing_key_id, OLD.storage_url, OLD.pci_requirement, OLD.generated_at, OLD.generated_by,
        OLD.expires_at, OLD.chain, OLD.sequence, OLD.prev_hash, OLD.log_index) THEN
        RAISE EXCEPTION 'evidence % is immutable: only last_verified_at and verification_count may change', OLD.id;
    END IF;
    RETURN NEW;
END $$;

DROP TABLE evidence_log;

CREATE VIEW evidence_log AS
SELECT b.first_index + u.o - 1 AS log_index,
       u.evidence_id,
       encode(substring(b.record_hashes FROM (u.o * 32 - 31)::int FOR 32), 'hex') AS record_hash,
       b.checkpoint_size,
       b.inclusion[u.o] AS inclusion
  FROM evidence_log_batches b,
       unnest(b.evidence_ids) WITH ORDINALITY AS u(evidence_id, o);
