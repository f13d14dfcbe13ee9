-- 0009_eta_cohorts: a campaign's estimate (GET /v1/stats' eta, `personactl stats`) groups the
-- active jobs by state, remote status and the times it counts from (Store::active_cohorts).
-- This index holds exactly those columns of the active jobs, so the grouping reads the index
-- alone (~30 bytes a job) instead of every row (~1.5 KB with its spec). A poll that changes
-- nothing (Store::record_poll) names none of its columns and leaves it alone.
CREATE INDEX IF NOT EXISTS jobs_active_eta ON jobs (state, remote_status, status_since, submitted_at)
  WHERE state IN ('queued', 'submitting', 'pending');
