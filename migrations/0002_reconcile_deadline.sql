-- 0002_reconcile_deadline: when a create's outcome became unknown (the reconcile deadline and
-- the freshness of a list that may prove it absent count from there), and why a job waits for
-- the operator (`personactl resolve`).
ALTER TABLE jobs ADD COLUMN unknown_since INTEGER;
ALTER TABLE jobs ADD COLUMN operator_reason TEXT;

-- Jobs flagged for the operator are looked up apart (stats, metrics, later a filter).
CREATE INDEX jobs_needs_operator ON jobs (needs_operator) WHERE needs_operator = 1;
