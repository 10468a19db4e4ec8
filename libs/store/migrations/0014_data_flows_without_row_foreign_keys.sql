-- data_flows loses its two row-by-row foreign keys to resources. Measured
-- (cargo bench --bench data_flows_write, 200,000 rows): a binary COPY into
-- the table with them runs at about half the speed of one without them, on
-- native partitions and on TimescaleDB hypertables alike: each row fires
-- two referential-integrity triggers. The guarantee stays, checked once per
-- batch instead of once per row: the store's data_flows write checks, in
-- the same transaction, that every resource its rows name exists, and
-- fails with the same SQLSTATE (23503) naming them otherwise. Resources are
-- never deleted (they are deactivated), so ON DELETE CASCADE had nothing to
-- do.

ALTER TABLE data_flows DROP CONSTRAINT IF EXISTS data_flows_source_resource_id_fkey;
ALTER TABLE data_flows DROP CONSTRAINT IF EXISTS data_flows_dest_resource_id_fkey;
