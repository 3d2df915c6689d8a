-- The event a mail tells of (NULL for mail that follows no event, such as a password reset),
-- sent as its `X-Carehub-Event` header so a delivered mail can be traced to its event.
ALTER TABLE mail_outbox ADD COLUMN event_id TEXT;
