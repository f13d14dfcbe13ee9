-- 0003_job_counts: counts per state (with their polls and attempts) kept in the same
-- transaction as every change of a job row, by triggers, so stats, /metrics and the STATUS
-- line cost the same at 10 and 1,000,000 jobs; and the next due job found through a partial
-- index instead of a scan.
CREATE TABLE job_counts (
  state          TEXT    PRIMARY KEY CHECK (state IN ('queued', 'submitting', 'pending', 'done',
                                                      'failed', 'expired', 'cancelled')),
  jobs           INTEGER NOT NULL DEFAULT 0,
  polls          INTEGER NOT NULL DEFAULT 0,
  attempts       INTEGER NOT NULL DEFAULT 0,
  needs_operator INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;

INSERT INTO job_counts (state)
  VALUES ('queued'), ('submitting'), ('pending'), ('done'), ('failed'), ('expired'), ('cancelled');

UPDATE job_counts SET
  jobs = (SELECT count(*) FROM jobs WHERE jobs.state = job_counts.state),
  polls = (SELECT coalesce(sum(polls), 0) FROM jobs WHERE jobs.state = job_counts.state),
  attempts = (SELECT coalesce(sum(attempts), 0) FROM jobs WHERE jobs.state = job_counts.state),
  needs_operator = (SELECT count(*) FROM jobs
                    WHERE jobs.state = job_counts.state AND jobs.needs_operator = 1);

CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs BEGIN
  UPDATE job_counts SET jobs = jobs + 1, polls = polls + NEW.polls,
                        attempts = attempts + NEW.attempts,
                        needs_operator = needs_operator + NEW.needs_operator
   WHERE state = NEW.state;
END;

CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs BEGIN
  UPDATE job_counts SET jobs = jobs - 1, polls = polls - OLD.polls,
                        attempts = attempts - OLD.attempts,
                        needs_operator = needs_operator - OLD.needs_operator
   WHERE state = OLD.state;
END;

CREATE TRIGGER job_counts_update AFTER UPDATE OF state, polls, attempts, needs_operator ON jobs
BEGIN
  UPDATE job_counts SET jobs = jobs - 1, polls = polls - OLD.polls,
                        attempts = attempts - OLD.attempts,
                        needs_operator = needs_operator - OLD.needs_operator
   WHERE state = OLD.state;
  UPDATE job_counts SET jobs = jobs + 1, polls = polls + NEW.polls,
                        attempts = attempts + NEW.attempts,
                        needs_operator = needs_operator + NEW.needs_operator
   WHERE state = NEW.state;
END;

-- The next due job: one step down a partial index over the non-final jobs.
CREATE INDEX jobs_active_due ON jobs (next_poll_at, id)
  WHERE state IN ('queued', 'submitting', 'pending') AND next_poll_at IS NOT NULL;
