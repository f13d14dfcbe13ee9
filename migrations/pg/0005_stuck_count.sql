-- 0005_stuck_count (PostgreSQL): SQLite's 0012. The non-final jobs by the time of their last
-- change of state or remote status: /metrics' personad_jobs_stuck reads a range of it, the
-- stuck jobs alone, instead of every non-final job.
CREATE INDEX IF NOT EXISTS jobs_active_since ON jobs (status_since)
  WHERE state IN ('queued', 'submitting', 'pending');
