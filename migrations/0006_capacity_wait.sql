-- 0006_capacity_wait: why a queued job is not sent yet (api.check_capacity): "avatar capacity
-- full (N of N)" while the workspace is full; null otherwise.
ALTER TABLE jobs ADD COLUMN waiting_reason TEXT;
