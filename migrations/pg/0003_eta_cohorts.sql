-- 0003_eta_cohorts: the index a campaign's estimate groups the active jobs by (see the SQLite
-- migration 0009_eta_cohorts.sql).
CREATE INDEX IF NOT EXISTS jobs_active_eta ON jobs (state, remote_status, status_since, submitted_at)
  WHERE state IN ('queued', 'submitting', 'pending');
