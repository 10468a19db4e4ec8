-- Evidence: the public keys that signed it, and records that cannot change.

-- Every key that ever signed evidence, so an export carries the public keys
-- of records signed before a key rotation.
CREATE TABLE evidence_keys (
    key_id         varchar(128) PRIMARY KEY,
    public_key_pem text NOT NULL,
    first_used_at  timestamptz NOT NULL DEFAULT now()
);

-- Records are never updated in place: only the verification bookkeeping
-- may change. Removal (retention) is a DELETE of an expired record.
CREATE FUNCTION psg_evidence_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.id, NEW.scope_decision_id, NEW.evidence_type, NEW.data, NEW.hash, NEW.signature,
        NEW.signing_key_id, NEW.storage_url, NEW.pci_requirement, NEW.generated_at, NEW.generated_by,
        NEW.expires_at, NEW.chain, NEW.sequence, NEW.prev_hash)
       IS DISTINCT FROM
       (OLD.id, OLD.scope_decision_id, OLD.evidence_type, OLD.data, OLD.hash, OLD.signature,
        OLD.signing_key_id, OLD.storage_url, OLD.pci_requirement, OLD.generated_at, OLD.generated_by,
        OLD.expires_at, OLD.chain, OLD.sequence, OLD.prev_hash) THEN
        RAISE EXCEPTION 'evidence % is immutable: only last_verified_at and verification_count may change', OLD.id;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER evidence_immutable BEFORE UPDATE ON evidence
    FOR EACH ROW EXECUTE FUNCTION psg_evidence_immutable();

CREATE INDEX idx_evidence_expires_at ON evidence (expires_at);
