-- 0001_init: the jobs table (one row per persona creation job) and its transition history.
-- Times are UTC milliseconds since the Unix epoch; spec is the PersonaSpec as a JSON object.

-- Marks the file as personad's, so a SQLite database of another program is never migrated.
PRAGMA application_id = 1347636804;  -- 0x50534E44, "PSND"

CREATE TABLE jobs (
  id               INTEGER PRIMARY KEY,
  key              TEXT    NOT NULL UNIQUE,
  state            TEXT    NOT NULL CHECK (state IN ('queued', 'submitting', 'pending', 'done',
                                                     'failed', 'expired', 'cancelled')),
  client_ref       TEXT    NOT NULL UNIQUE,
  spec             TEXT    NOT NULL CHECK (json_valid(spec)),
  source           TEXT    NOT NULL,
  remote_id        TEXT,
  remote_status    TEXT,
  failed_reason    TEXT,
  created_at       INTEGER NOT NULL,
  submitted_at     INTEGER,
  updated_at       INTEGER NOT NULL,
  next_poll_at     INTEGER,
  polls            INTEGER NOT NULL DEFAULT 0 CHECK (polls >= 0),
  attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  errors           INTEGER NOT NULL DEFAULT 0 CHECK (errors >= 0),
  submitting_since INTEGER,
  needs_operator   INTEGER NOT NULL DEFAULT 0 CHECK (needs_operator IN (0, 1)),
  send_unknown     INTEGER NOT NULL DEFAULT 0 CHECK (send_unknown IN (0, 1)),
  last_sent_at     INTEGER,
  expires_at       INTEGER
) STRICT;

-- The start-up load and the next-due lookup filter on non-final states ordered by due time.
CREATE INDEX jobs_state_next_poll ON jobs (state, next_poll_at);
-- One remote persona belongs to at most one job: adopting it twice would be a double count.
CREATE UNIQUE INDEX jobs_remote_id ON jobs (remote_id) WHERE remote_id IS NOT NULL;

CREATE TABLE transitions (
  id            INTEGER PRIMARY KEY,
  job_id        INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  at            INTEGER NOT NULL,
  from_state    TEXT CHECK (from_state IS NULL OR
                            from_state IN ('queued', 'submitting', 'pending', 'done', 'failed',
                                           'expired', 'cancelled')),
  to_state      TEXT    NOT NULL CHECK (to_state IN ('queued', 'submitting', 'pending', 'done',
                                                     'failed', 'expired', 'cancelled')),
  remote_status TEXT,
  reason        TEXT
) STRICT;

-- history(job) reads one job's rows in insertion order.
CREATE INDEX transitions_job ON transitions (job_id, id);
