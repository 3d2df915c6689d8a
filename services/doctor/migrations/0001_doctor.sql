-- Doctor service tables. Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- Timestamps are Unix milliseconds (BIGINT); ids are the account ids (UUID v7 text).

-- One row per doctor account, created from the account stream (CAREHUB_USERS).
CREATE TABLE doctors (
    id                 TEXT PRIMARY KEY,
    display_name       TEXT NOT NULL,               -- from the account
    display_name_lower TEXT NOT NULL,               -- lowercased in Rust, for search
    account_status     TEXT NOT NULL,               -- active = approved and listed
    specialties        TEXT NOT NULL DEFAULT '[]',  -- JSON array of slugs
    bio                TEXT NOT NULL DEFAULT '',
    time_zone          TEXT NOT NULL DEFAULT 'UTC', -- IANA name
    weekly             TEXT NOT NULL DEFAULT '[]',  -- JSON array of {weekday, start, end}
    slot_minutes       BIGINT NOT NULL DEFAULT 30,
    auto_accept        BOOLEAN NOT NULL DEFAULT FALSE,
    -- Incremented by every change; events carry it so consumers can drop stale copies.
    version            BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX doctors_status ON doctors (account_status, id);

CREATE TABLE time_off (
    id         TEXT PRIMARY KEY,
    doctor_id  TEXT NOT NULL REFERENCES doctors (id),
    start_at   BIGINT NOT NULL,
    end_at     BIGINT NOT NULL,
    reason     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX time_off_doctor ON time_off (doctor_id, end_at);

-- Account events already applied, so a redelivered one changes nothing.
CREATE TABLE applied_events (
    event_id   TEXT PRIMARY KEY,
    applied_at BIGINT NOT NULL
);
