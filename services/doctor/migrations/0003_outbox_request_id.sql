-- The request that caused an event, published with it so consumers log under the same id.
-- Nullable: an instance of the previous version still inserts rows without it (expand only).
ALTER TABLE outbox ADD COLUMN request_id TEXT;
