-- Evidence's text keys compared byte by byte: `hash` (64 hex digits,
-- UNIQUE), `chain` (UNIQUE with `sequence`) and `pci_requirement` (two
-- indexes) are ASCII identifiers, never words. Under the database's
-- default collation (C.UTF-8, en_US.UTF-8, ...) PostgreSQL compares them
-- with strcoll(), on every step down every one of their b-trees, for
-- every evidence row written; under "C" it compares their bytes. Equality
-- is the same either way, and so is the order of ASCII letters, digits
-- and '_' under C.UTF-8 (it may differ under a language's collation,
-- which no query here depends on). Each column's indexes are rebuilt, under
-- an exclusive lock; the table is not rewritten (the type does not change):
-- about 0.07 s at 50,000 rows here, so budget a minute or so per ten
-- million. Measured (psql, 50,000 rows, six runs each): the evidence insert
-- takes 0.81-0.91 s under C.UTF-8 and 0.72-0.79 s under "C".

ALTER TABLE evidence
    ALTER COLUMN hash TYPE varchar(64) COLLATE "C",
    ALTER COLUMN chain TYPE varchar(64) COLLATE "C",
    ALTER COLUMN pci_requirement TYPE varchar(16) COLLATE "C";
