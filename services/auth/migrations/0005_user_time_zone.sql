-- The IANA time zone an account's mails and reminders are written in. Existing accounts, and
-- accounts an instance of the previous version still inserts without it, get UTC (expand only).
ALTER TABLE users ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
