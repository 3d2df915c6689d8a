-- The recipient's IANA time zone, from account events; mails and reminders are written in it.
-- Rows kept before it, and rows an instance of the previous version still writes, read UTC
-- until the account's next event (expand only).
ALTER TABLE users ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
-- The name a reminder's text gives the other person ('' when unknown), so the text is written
-- when the reminder is sent, in the zone the recipient has then. NULL on reminders planned
-- before this column (or by an instance of the previous version): their stored text is sent.
ALTER TABLE reminders ADD COLUMN with_name TEXT;
