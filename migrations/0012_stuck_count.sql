-- 0012_stuck_count: the non-final jobs by the time of their last change of state or remote
-- status, so that /metrics' personad_jobs_stuck counts the stuck jobs alone (a range of this
-- index: O(stuck jobs)) instead of walking every non-final job (jobs_active_created in list
-- order: 7–28 ms at 100,000 jobs on every scrape, issue 12). A transition writes one more index
-- entry; a recorded poll none (it never changes status_since). Building it took 0.13 s at
-- 100,000 jobs (warm page cache), once. The condition is 0011's, word for word.
CREATE INDEX IF NOT EXISTS jobs_active_since ON jobs (status_since)
  WHERE (state = 'queued' OR state = 'submitting' OR state = 'pending');
