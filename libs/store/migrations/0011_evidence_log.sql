-- The evidence log: one append-only Merkle tree (RFC 6962) over every
-- evidence record, in log order, and its signed checkpoints (C2SP
-- tlog-checkpoint notes).
--
-- evidence_log keeps every leaf, also of records that `evidence expire`
-- removed: the tree, its roots and proofs need every leaf. It has no foreign
-- key to evidence for that reason. Both tables are append-only.
CREATE TABLE evidence_log (
    log_index       bigint PRIMARY KEY CHECK (log_index >= 0),
    evidence_id     uuid NOT NULL UNIQUE,
    record_hash     varchar(64) NOT NULL,
    checkpoint_size bigint NOT NULL CHECK (checkpoint_size > log_index),
    inclusion       text[] NOT NULL
);

CREATE TABLE evidence_checkpoints (
    origin        varchar(255) NOT NULL,
    tree_size     bigint NOT NULL CHECK (tree_size > 0),
    root          varchar(64) NOT NULL,
    key_id        varchar(128) NOT NULL,
    checkpoint    text NOT NULL,
    previous_size bigint CHECK (previous_size < tree_size),
    consistency   text[] NOT NULL,
    signed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (origin, tree_size)
);

CREATE FUNCTION psg_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: rows are never changed or removed', TG_TABLE_NAME;
END $$;

CREATE TRIGGER evidence_log_append_only BEFORE UPDATE OR DELETE ON evidence_log
    FOR EACH ROW EXECUTE FUNCTION psg_append_only();
CREATE TRIGGER evidence_checkpoints_append_only BEFORE UPDATE OR DELETE ON evidence_checkpoints
    FOR EACH ROW EXECUTE FUNCTION psg_append_only();
