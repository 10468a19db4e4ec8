-- The seed's two low-cardinality evidence indexes, ix_evidence_pci_requirement
-- (pci_requirement) and idx_evidence_type_requirement (evidence_type,
-- pci_requirement), become partial indexes that leave out the scope
-- identification records: one per scope decision, nearly every row of the
-- table, all of one type and of requirement 12.5.2.
--
-- For those values the indexes never served a query: a search for them
-- returns most of the table, and the planner reads the table instead (as
-- PostgreSQL's documentation advises in "Partial Indexes", excluding common
-- values). Every other search keeps its index: by a report type, by a
-- requirement other than 12.5.2, by a NULL requirement, or by both columns,
-- the planner proves the predicate from the query's own condition (a
-- literal, or a parameter under a custom plan, PostgreSQL's default for a
-- prepared statement whose generic plan costs more).
--
-- Writing them was the dearest part of storing a record after the evidence
-- service's own keys: measured (callgrind, a single-user backend copying
-- 20,000 evidence rows, stop 44), 9,100 and 8,200 instructions per row of
-- 102,800 for the whole COPY. Issue 20's throughput target counts every
-- microsecond of PostgreSQL's CPU per record.
--
-- Rebuilding takes a SHARE lock on evidence (writes wait, reads go on) while
-- each index reads the table once.

DROP INDEX IF EXISTS ix_evidence_pci_requirement;
CREATE INDEX ix_evidence_pci_requirement ON evidence (pci_requirement)
    WHERE pci_requirement <> '12.5.2' OR pci_requirement IS NULL;

DROP INDEX IF EXISTS idx_evidence_type_requirement;
CREATE INDEX idx_evidence_type_requirement ON evidence (evidence_type, pci_requirement)
    WHERE evidence_type <> 'pci_scope_identification';
