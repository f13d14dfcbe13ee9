-- 0004_batch_files (PostgreSQL): SQLite's 0010. Batch files the daemon enqueued whole, by path,
-- with the fingerprint of the content enqueued (batch_fingerprint.hpp): a scan that finds the
-- same content again skips its parse, every key in it being known already. Only an
-- optimisation: a lost row costs one parse. IF NOT EXISTS: see the SQLite migration.
CREATE TABLE IF NOT EXISTS batch_files (
  path        TEXT   COLLATE "C" PRIMARY KEY,  -- batches.directory / file name, on its host
  fingerprint TEXT   NOT NULL,                 -- "sha256:<hex>:<bytes>"
  entries     BIGINT NOT NULL CHECK (entries >= 0),
  intaken_at  BIGINT NOT NULL                  -- UTC ms: when it was remembered
);
