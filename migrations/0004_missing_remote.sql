-- 0004_missing_remote: a poll answered 404/410 fails the job only once the persona has been
-- missing for a while (eventual consistency, a proxy); these record since when and how often.
-- A job failed that way keeps missing_since, so `personactl retry` may resume its polling.
ALTER TABLE jobs ADD COLUMN missing_since INTEGER;
ALTER TABLE jobs ADD COLUMN missing_count INTEGER NOT NULL DEFAULT 0 CHECK (missing_count >= 0);
