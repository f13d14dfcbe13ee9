-- 0010_batch_files: batch files the daemon enqueued whole, by path, with the fingerprint of the
-- content enqueued (batch_fingerprint.hpp). A scan of batches.d that finds the same content
-- there again skips its parse: every key in it is known already (issue 12: a 100,000-entry
-- file cost seconds and hundreds of MiB at every start). Only an optimisation: a lost row
-- costs one parse. (Numbered after 0009, which an earlier build of this change applied first;
-- IF NOT EXISTS: a database that went the other way already has it.)
CREATE TABLE IF NOT EXISTS batch_files (
  path        TEXT    PRIMARY KEY,  -- as the daemon names it: batches.directory / file name
  fingerprint TEXT    NOT NULL,     -- "sha256:<hex>:<bytes>"
  entries     INTEGER NOT NULL CHECK (entries >= 0),
  intaken_at  INTEGER NOT NULL      -- UTC ms: when it was remembered
) STRICT, WITHOUT ROWID;
