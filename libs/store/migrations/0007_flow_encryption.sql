-- Encryption in transit, as the flow logs saw it: per data_flows row, the
-- flow records whose traffic was seen encrypted (AWS encryption-status 1-3,
-- Azure VNet flow logs' X) and unencrypted (AWS 0, Azure NX*); the rest of
-- flow_count is unknown (the log format does not say).
ALTER TABLE data_flows
    ADD COLUMN IF NOT EXISTS encrypted_flow_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS unencrypted_flow_count bigint NOT NULL DEFAULT 0;
