-- 0005_selection: what selecting jobs by the contract's filters and paging needs, in SQL with
-- indexes (personactl list --state/--label/--source/--key/--remote-status/--since/--until/
-- --needs-operator/--stuck, --limit/--after), never by loading every job.

-- When the job's state or remote status last changed (`--stuck`: unchanged for stuck_after).
-- Rows from before: the latest history row (every state or remote status change writes one),
-- else the last update.
ALTER TABLE jobs ADD COLUMN status_since INTEGER;
UPDATE jobs SET status_since = coalesce(
  (SELECT max(at) FROM transitions WHERE transitions.job_id = jobs.id), updated_at);

-- The operator's labels of each job's spec, one row each (the spec stays the truth; labels,
-- keys and creation times never change after intake), in the selection's order, so `--label`
-- walks one label's jobs already sorted instead of scanning JSON or sorting.
CREATE TABLE job_labels (
  label      TEXT    NOT NULL,
  created_at INTEGER NOT NULL,
  key        TEXT    NOT NULL,
  job_id     INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  PRIMARY KEY (label, created_at, key)
) STRICT, WITHOUT ROWID;
INSERT OR IGNORE INTO job_labels (label, created_at, key, job_id)
  SELECT each.value, jobs.created_at, jobs.key, jobs.id
    FROM jobs, json_each(jobs.spec, '$.labels') AS each
   WHERE each.type = 'text';
-- Deleting a job (a later archive) finds its labels without a scan.
CREATE INDEX job_labels_job ON job_labels (job_id);

-- The order of every selection is (created_at, key): paging walks this index from the
-- `--after` job on, and `--since`/`--until` are ranges of it.
CREATE INDEX jobs_created ON jobs (created_at, key);
-- The selective filters, each already in the selection's order: one value walks its jobs
-- sorted, several are merged from the index alone.
CREATE INDEX jobs_state_created ON jobs (state, created_at, key);
CREATE INDEX jobs_source_created ON jobs (source, created_at, key);
CREATE INDEX jobs_remote_status_created ON jobs (remote_status, created_at, key);
-- `--stuck`: the non-final jobs in order, with the time of their last change at hand.
CREATE INDEX jobs_active_created ON jobs (created_at, key, status_since)
  WHERE state IN ('queued', 'submitting', 'pending');
