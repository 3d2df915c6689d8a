-- Comms hub tables. Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- Timestamps are Unix milliseconds (BIGINT); ids are UUID v7 text.

-- Chat messages. A room is an appointment id; seq counts 1, 2, 3, ... per room and is assigned in
-- the writing transaction (the primary key makes two writers of one seq conflict; the loser
-- retries). (room, sender_id, client_id) makes a client's retry store nothing new.
CREATE TABLE chat_messages (
    room       TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    sender_id  TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    body       TEXT NOT NULL,
    sent_at    BIGINT NOT NULL,
    PRIMARY KEY (room, seq),
    UNIQUE (room, sender_id, client_id)
);

-- How far each participant has read each room (only ever moves forward).
CREATE TABLE chat_reads (
    room       TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (room, user_id)
);

-- Video calls. At most one open (not ended) call per appointment.
CREATE TABLE calls (
    id             TEXT PRIMARY KEY,
    appointment_id TEXT NOT NULL,
    caller_id      TEXT NOT NULL,
    -- ringing, active, ended
    state          TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    started_at     BIGINT,
    ended_at       BIGINT,
    end_reason     TEXT
);
CREATE UNIQUE INDEX calls_open ON calls (appointment_id) WHERE ended_at IS NULL;
