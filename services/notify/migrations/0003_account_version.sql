-- The account version of the newest account event applied to this copy (0: none seen yet, or
-- events from before versions). An event replaces the copy only when it is newer
-- (carehub_runtime::account_copy), so a late, repeated or replayed older event changes nothing.
ALTER TABLE users ADD COLUMN account_version BIGINT NOT NULL DEFAULT 0;
