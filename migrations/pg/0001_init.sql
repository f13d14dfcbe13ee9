-- 0001_init (PostgreSQL): the whole schema of SQLite's latest migration (0001 … 0007) in one
-- step, plus what several hosts on one database need: the lease row and the action table.
--
-- One description per backend, on purpose: SQLite's dialect (STRICT tables, PRAGMA
-- application_id/user_version, json_each, INSERT OR IGNORE, triggers without functions) does not
-- translate mechanically, and PostgreSQL has no old databases to upgrade step by step. What both
-- must agree on is the data: the same columns with the same meaning, times as BIGINT UTC
-- milliseconds since the Unix epoch (so both backends round-trip identical Job values), keys and
-- labels in byte order (COLLATE "C", as SQLite compares text), counts per state kept by
-- triggers in the writing transaction. A later change of the schema is one migration per
-- backend (migrations/NNNN_*.sql and migrations/pg/NNNN_*.sql), tested by the same store suite.
--
-- The version lives in personad_schema (made by the migrator, not here); every migration runs
-- under a transaction-level advisory lock, so two hosts starting at once migrate once.

-- One row per persona creation job. spec is the PersonaSpec as JSON text: read back byte for
-- byte as written (jsonb would reorder and deduplicate keys), never queried inside by SQL.
CREATE TABLE jobs (
  id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  key              TEXT    COLLATE "C" NOT NULL UNIQUE,
  state            TEXT    NOT NULL CHECK (state IN ('queued', 'submitting', 'pending', 'done',
                                                     'failed', 'expired', 'cancelled')),
  client_ref       TEXT    NOT NULL UNIQUE,
  spec             TEXT    NOT NULL CHECK (json_typeof(spec::json) = 'object'),
  source           TEXT    NOT NULL,
  remote_id        TEXT,
  remote_status    TEXT,
  failed_reason    TEXT,
  created_at       BIGINT  NOT NULL,
  submitted_at     BIGINT,
  updated_at       BIGINT  NOT NULL,
  next_poll_at     BIGINT,
  polls            BIGINT  NOT NULL DEFAULT 0 CHECK (polls >= 0),
  attempts         BIGINT  NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  errors           BIGINT  NOT NULL DEFAULT 0 CHECK (errors >= 0),
  submitting_since BIGINT,
  needs_operator   BOOLEAN NOT NULL DEFAULT false,
  send_unknown     BOOLEAN NOT NULL DEFAULT false,
  last_sent_at     BIGINT,
  expires_at       BIGINT,
  unknown_since    BIGINT,
  operator_reason  TEXT,
  missing_since    BIGINT,
  missing_count    BIGINT  NOT NULL DEFAULT 0 CHECK (missing_count >= 0),
  status_since     BIGINT,
  waiting_reason   TEXT
);

-- One remote persona belongs to at most one job: adopting it twice would be a double count.
CREATE UNIQUE INDEX jobs_remote_id ON jobs (remote_id) WHERE remote_id IS NOT NULL;
CREATE INDEX jobs_state_next_poll ON jobs (state, next_poll_at);
CREATE INDEX jobs_needs_operator ON jobs (needs_operator) WHERE needs_operator;
-- The next due job: one step down a partial index over the non-final jobs.
CREATE INDEX jobs_active_due ON jobs (next_poll_at, id)
  WHERE state IN ('queued', 'submitting', 'pending') AND next_poll_at IS NOT NULL;
-- The order of every selection is (created_at, key); each selective filter has an index that
-- starts with it and goes on in that order.
CREATE INDEX jobs_created ON jobs (created_at, key);
CREATE INDEX jobs_state_created ON jobs (state, created_at, key);
CREATE INDEX jobs_source_created ON jobs (source, created_at, key);
CREATE INDEX jobs_remote_status_created ON jobs (remote_status, created_at, key);
CREATE INDEX jobs_active_created ON jobs (created_at, key, status_since)
  WHERE state IN ('queued', 'submitting', 'pending');

CREATE TABLE transitions (
  id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_id        BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  at            BIGINT NOT NULL,
  from_state    TEXT CHECK (from_state IS NULL OR
                            from_state IN ('queued', 'submitting', 'pending', 'done', 'failed',
                                           'expired', 'cancelled')),
  to_state      TEXT   NOT NULL CHECK (to_state IN ('queued', 'submitting', 'pending', 'done',
                                                    'failed', 'expired', 'cancelled')),
  remote_status TEXT,
  reason        TEXT
);
-- history(job) reads one job's rows in insertion order.
CREATE INDEX transitions_job ON transitions (job_id, id);

-- The operator's labels of each job's spec, one row each, in the selection's order.
CREATE TABLE job_labels (
  label      TEXT   COLLATE "C" NOT NULL,
  created_at BIGINT NOT NULL,
  key        TEXT   COLLATE "C" NOT NULL,
  job_id     BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  PRIMARY KEY (label, created_at, key)
);
CREATE INDEX job_labels_job ON job_labels (job_id);

-- Keys of archived jobs: their rows are gone, their keys stay taken.
CREATE TABLE archived_keys (
  key         TEXT   COLLATE "C" PRIMARY KEY,
  state       TEXT   NOT NULL,
  spec        TEXT   NOT NULL,
  archived_at BIGINT NOT NULL,
  file        TEXT   NOT NULL
);

-- Counts per state kept in the same transaction as every change of a job row (stats,
-- /metrics and the STATUS line cost the same at 10 and 1,000,000 jobs).
CREATE TABLE job_counts (
  state          TEXT   PRIMARY KEY CHECK (state IN ('queued', 'submitting', 'pending', 'done',
                                                     'failed', 'expired', 'cancelled')),
  jobs           BIGINT NOT NULL DEFAULT 0,
  polls          BIGINT NOT NULL DEFAULT 0,
  attempts       BIGINT NOT NULL DEFAULT 0,
  needs_operator BIGINT NOT NULL DEFAULT 0
);
INSERT INTO job_counts (state)
  VALUES ('queued'), ('submitting'), ('pending'), ('done'), ('failed'), ('expired'), ('cancelled');

CREATE FUNCTION job_counts_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    UPDATE job_counts SET jobs = jobs - 1, polls = polls - OLD.polls,
                          attempts = attempts - OLD.attempts,
                          needs_operator = needs_operator - OLD.needs_operator::int
     WHERE state = OLD.state;
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    UPDATE job_counts SET jobs = jobs + 1, polls = polls + NEW.polls,
                          attempts = attempts + NEW.attempts,
                          needs_operator = needs_operator + NEW.needs_operator::int
     WHERE state = NEW.state;
  END IF;
  RETURN NULL;
END;
$$;
CREATE TRIGGER job_counts_insert_delete AFTER INSERT OR DELETE ON jobs
  FOR EACH ROW EXECUTE FUNCTION job_counts_keep();
-- Only a change of what is counted touches job_counts (a poll's schedule update does not).
CREATE TRIGGER job_counts_update AFTER UPDATE OF state, polls, attempts, needs_operator ON jobs
  FOR EACH ROW
  WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.polls IS DISTINCT FROM NEW.polls OR
        OLD.attempts IS DISTINCT FROM NEW.attempts OR
        OLD.needs_operator IS DISTINCT FROM NEW.needs_operator)
  EXECUTE FUNCTION job_counts_keep();

-- Leadership among hosts (pg_lease.hpp): one row, timed by the database's clock. The epoch
-- grows at every acquisition that is not the renewal of a live lease, so a store fenced with an
-- older epoch (pg_store.hpp) can never write again.
CREATE TABLE personad_lease (
  id         INTEGER     PRIMARY KEY CHECK (id = 1),
  holder     TEXT        NOT NULL,  -- '' until someone first takes it
  epoch      BIGINT      NOT NULL CHECK (epoch >= 0),
  expires_at TIMESTAMPTZ NOT NULL
);
INSERT INTO personad_lease (id, holder, epoch, expires_at) VALUES (1, '', 0, 'epoch');

-- Operator actions from any host (pg_actions.hpp): a standby posts the control request, the
-- active host claims it (claimed_epoch: its lease epoch), runs it and writes the answer.
CREATE TABLE personad_actions (
  id            BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  method        TEXT        NOT NULL,
  target        TEXT        NOT NULL,
  body          TEXT        NOT NULL,
  requested_by  TEXT        NOT NULL,
  requested_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
  claimed_epoch BIGINT,
  claimed_by    TEXT,
  claimed_at    TIMESTAMPTZ,
  answered_at   TIMESTAMPTZ,
  status        INTEGER,
  answer        TEXT,
  withdrawn     BOOLEAN     NOT NULL DEFAULT false
);
-- The active host's claim: the open requests, oldest first.
CREATE INDEX personad_actions_open ON personad_actions (id)
  WHERE answered_at IS NULL AND NOT withdrawn;
