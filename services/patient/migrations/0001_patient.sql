-- Patient service tables. Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- Timestamps are Unix milliseconds (BIGINT); ids are the account's UUID v7 text.

-- Accounts as the auth service announced them (stream CAREHUB_USERS), so records of unknown
-- or non-patient ids can be refused and the profile can show the account's display name.
CREATE TABLE accounts (
    id           TEXT PRIMARY KEY,
    role         TEXT NOT NULL,
    status       TEXT NOT NULL,
    display_name TEXT NOT NULL,
    -- The `at` of the newest event applied; older events arriving late change nothing.
    event_at     BIGINT NOT NULL
);

-- One row per patient: created on the patient's first access or from their registration event.
CREATE TABLE patients (
    id                 TEXT PRIMARY KEY,
    created_at         BIGINT NOT NULL,
    -- Profile (edited by the patient; version-checked).
    profile_version    BIGINT NOT NULL,
    profile_updated_at BIGINT NOT NULL,
    date_of_birth      TEXT,                  -- YYYY-MM-DD
    phone              TEXT,
    address            TEXT,                  -- JSON object, or NULL
    emergency_contact  TEXT,                  -- JSON object, or NULL
    -- Medical record (edited by the patient; version-checked).
    record_version     BIGINT NOT NULL,
    record_updated_at  BIGINT NOT NULL,
    allergies          TEXT NOT NULL,         -- JSON array
    conditions         TEXT NOT NULL,         -- JSON array
    medications        TEXT NOT NULL,         -- JSON array
    blood_type         TEXT NOT NULL,
    notes              TEXT NOT NULL
);

-- Append-only: every read of someone else's record. Each row is also published (outbox) as a
-- carehub_nats::audit::AuditEntry with the same id.
CREATE TABLE audit_log (
    id         TEXT PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor_id   TEXT NOT NULL,
    actor_role TEXT NOT NULL,
    subject_id TEXT,
    action     TEXT NOT NULL,
    reason     TEXT
);
CREATE INDEX audit_log_subject ON audit_log (subject_id);
