-- Correlate's checkpoints: where each input partition's window state stood
-- when the data_flows rows of a batch were written, in the same transaction.
-- A restarted instance (or the partition's next owner) resumes from it, so a
-- replay repeats exactly what the first run did: records before
-- resume_offset are done; records between resume_offset and
-- processed_offset are counted again only where their window was still open;
-- `state` holds the watermark, the newest source position counted per source
-- partition (second copies of flow batches are skipped) and the records held
-- back for their inventory.
CREATE TABLE IF NOT EXISTS correlate_checkpoints (
    consumer_group   text        NOT NULL,
    topic            text        NOT NULL,
    partition        integer     NOT NULL,
    resume_offset    bigint      NOT NULL,
    processed_offset bigint      NOT NULL,
    state            jsonb       NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition),
    CHECK (resume_offset >= 0 AND processed_offset >= resume_offset)
);
