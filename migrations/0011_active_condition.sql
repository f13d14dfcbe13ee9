-- 0011_active_condition: the three partial indexes over the non-final jobs say "active" as
-- `state = 'queued' OR state = 'submitting' OR state = 'pending'` instead of
-- `state IN (...)`. SQLite evaluates a partial index's condition for the old and the new row
-- of every write that names an indexed column, and it evaluates an IN list by building a
-- temporary b-tree each time a statement runs: two of them for every recorded poll and six
-- for every transition (perf, issue 12: a third of a poll's UPDATE). The queries that read
-- these indexes repeat the condition word for word (PERSONAD_SQL_ACTIVE in stored_job.hpp).
-- Only indexes change; no row is touched. Rebuilding them costs a few seconds at 1,000,000
-- jobs, once.
DROP INDEX IF EXISTS jobs_active_due;
CREATE INDEX jobs_active_due ON jobs (next_poll_at, id)
  WHERE (state = 'queued' OR state = 'submitting' OR state = 'pending')
    AND next_poll_at IS NOT NULL;

DROP INDEX IF EXISTS jobs_active_created;
CREATE INDEX jobs_active_created ON jobs (created_at, key, status_since)
  WHERE (state = 'queued' OR state = 'submitting' OR state = 'pending');

DROP INDEX IF EXISTS jobs_active_eta;
CREATE INDEX jobs_active_eta ON jobs (state, remote_status, status_since, submitted_at)
  WHERE (state = 'queued' OR state = 'submitting' OR state = 'pending');
