-- Notify service tables. Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- Timestamps are Unix milliseconds (BIGINT); ids are UUID v7 text.

-- What this service knows of each account, kept from the CAREHUB_USERS stream.
CREATE TABLE users (
    id           TEXT PRIMARY KEY,
    email        TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role         TEXT NOT NULL,
    status       TEXT NOT NULL,
    -- The `at` of the event this row reflects; older events never overwrite newer ones.
    updated_at   BIGINT NOT NULL
);

-- In-app notifications. One per (source event, user): replaying a stream adds nothing.
CREATE TABLE notifications (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    kind           TEXT NOT NULL,
    title          TEXT NOT NULL,
    body           TEXT NOT NULL,
    appointment_id TEXT,
    created_at     BIGINT NOT NULL,
    read_at        BIGINT,
    UNIQUE (event_id, user_id)
);
CREATE INDEX notifications_user ON notifications (user_id, id);

-- Mail waiting to be delivered. A row is claimed by one sender at a time (lease_until, set by
-- compare-and-set) and deleted once delivered or given up on.
CREATE TABLE mail_outbox (
    id              TEXT PRIMARY KEY,
    -- Either an explicit address, or a user whose address is looked up when sending.
    to_addr         TEXT,
    user_id         TEXT,
    kind            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    -- Mail that must not outlive a secret in it (password reset links) is purged at this time.
    expires_at      BIGINT,
    lease_until     BIGINT NOT NULL DEFAULT 0,
    lease_owner     TEXT
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at);

-- Reminder mails before confirmed appointments, sent once each (sent_at set by compare-and-set).
CREATE TABLE reminders (
    id             TEXT PRIMARY KEY,
    appointment_id TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    offset_ms      BIGINT NOT NULL,
    starts_at      TEXT NOT NULL,
    due_at         BIGINT NOT NULL,
    title          TEXT NOT NULL,
    body           TEXT NOT NULL,
    sent_at        BIGINT,
    UNIQUE (appointment_id, user_id, offset_ms, starts_at)
);
CREATE INDEX reminders_due ON reminders (due_at);

-- The newest appointment version whose reminders were applied, so an older event replayed late
-- cannot bring back withdrawn reminders.
CREATE TABLE reminder_versions (
    appointment_id TEXT PRIMARY KEY,
    version        BIGINT NOT NULL
);
