-- 0013_counts_by_the_store: job_counts (0003) is kept by the store's own writes from now on,
-- not by triggers. A trigger on jobs makes SQLite keep a statement journal for every INSERT and
-- UPDATE of a job (a copy of each page the statement touches, in case the trigger fails half
-- way): most of a write's cost at intake (issue 12, thirteenth pass in bench/README). The store
-- now follows each INSERT, UPDATE or DELETE of a job with one UPDATE of job_counts per state it
-- touches, in the same transaction (SqliteImpl::recount in src/core/store.cpp: the one place).
-- A later migration that changes jobs' state, polls, attempts or needs_operator must recount
-- as below.
DROP TRIGGER IF EXISTS job_counts_insert;
DROP TRIGGER IF EXISTS job_counts_delete;
DROP TRIGGER IF EXISTS job_counts_update;

UPDATE job_counts SET
  jobs = (SELECT count(*) FROM jobs WHERE jobs.state = job_counts.state),
  polls = (SELECT coalesce(sum(polls), 0) FROM jobs WHERE jobs.state = job_counts.state),
  attempts = (SELECT coalesce(sum(attempts), 0) FROM jobs WHERE jobs.state = job_counts.state),
  needs_operator = (SELECT count(*) FROM jobs
                    WHERE jobs.state = job_counts.state AND jobs.needs_operator = 1);
