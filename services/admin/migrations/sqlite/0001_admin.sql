-- Admin service tables (SQLite). Kept identical to ../postgres/0001_admin.sql except for the
-- overlap guard: triggers here, exclusion constraints there.

-- Local copy of the doctor service's facts (from the CAREHUB_DOCTORS stream).
CREATE TABLE doctors (
    doctor_id    TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    specialties  TEXT NOT NULL,           -- ",cardiology,dermatology," for LIKE matching
    approved     BOOLEAN NOT NULL,
    auto_accept  BOOLEAN NOT NULL,
    availability TEXT NOT NULL,           -- the snapshot as JSON
    version      BIGINT NOT NULL
);

CREATE TABLE doctor_groups (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL,
    specialty            TEXT UNIQUE,
    strategy             TEXT NOT NULL CHECK (strategy IN ('round_robin', 'least_loaded', 'broadcast')),
    accept_deadline_secs BIGINT NOT NULL,
    rr_cursor            BIGINT NOT NULL DEFAULT 0,
    version              BIGINT NOT NULL,
    created_at           BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_id  TEXT NOT NULL REFERENCES doctor_groups (id) ON DELETE CASCADE,
    doctor_id TEXT NOT NULL,
    position  BIGINT NOT NULL,
    PRIMARY KEY (group_id, doctor_id)
);

CREATE TABLE appointments (
    id              TEXT PRIMARY KEY,
    patient_id      TEXT NOT NULL,
    doctor_id       TEXT,
    group_id        TEXT,
    specialty       TEXT,
    target_kind     TEXT NOT NULL CHECK (target_kind IN ('doctor', 'group', 'specialty', 'slot')),
    status          TEXT NOT NULL CHECK (status IN ('requested', 'offered', 'confirmed', 'completed', 'no_show', 'cancelled', 'expired', 'declined')),
    window_start    BIGINT NOT NULL,
    window_end      BIGINT NOT NULL,
    start_at        BIGINT,
    end_at          BIGINT,
    reason          TEXT NOT NULL,
    closed_by       TEXT,
    close_reason    TEXT,
    in_admin_queue  BOOLEAN NOT NULL DEFAULT FALSE,
    final_deadline  BIGINT NOT NULL,
    idempotency_key TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    version         BIGINT NOT NULL,
    CHECK (window_start < window_end),
    CHECK (status <> 'confirmed' OR (doctor_id IS NOT NULL AND start_at IS NOT NULL AND end_at IS NOT NULL AND start_at < end_at))
);
CREATE UNIQUE INDEX appointments_idempotency ON appointments (patient_id, idempotency_key);
CREATE INDEX appointments_patient ON appointments (patient_id, id);
CREATE INDEX appointments_doctor ON appointments (doctor_id, id);
CREATE INDEX appointments_open ON appointments (status, final_deadline);

-- A doctor, and a patient, never hold two overlapping confirmed appointments: the database
-- itself refuses them, whatever writes the row.
CREATE TRIGGER appointments_no_doctor_overlap_insert BEFORE INSERT ON appointments
WHEN NEW.status = 'confirmed' AND EXISTS (
    SELECT 1 FROM appointments a WHERE a.status = 'confirmed' AND a.id <> NEW.id
      AND (a.doctor_id = NEW.doctor_id OR a.patient_id = NEW.patient_id)
      AND a.start_at < NEW.end_at AND NEW.start_at < a.end_at)
BEGIN
    SELECT RAISE(ABORT, 'appointment_overlap');
END;

CREATE TRIGGER appointments_no_doctor_overlap_update BEFORE UPDATE ON appointments
WHEN NEW.status = 'confirmed' AND EXISTS (
    SELECT 1 FROM appointments a WHERE a.status = 'confirmed' AND a.id <> NEW.id
      AND (a.doctor_id = NEW.doctor_id OR a.patient_id = NEW.patient_id)
      AND a.start_at < NEW.end_at AND NEW.start_at < a.end_at)
BEGIN
    SELECT RAISE(ABORT, 'appointment_overlap');
END;

CREATE TABLE offers (
    id             TEXT PRIMARY KEY,
    appointment_id TEXT NOT NULL REFERENCES appointments (id),
    doctor_id      TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'declined', 'withdrawn', 'timed_out')),
    deadline       BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    decided_at     BIGINT,
    reason         TEXT
);
-- At most one open offer per (request, doctor).
CREATE UNIQUE INDEX offers_one_pending ON offers (appointment_id, doctor_id) WHERE status = 'pending';
CREATE INDEX offers_doctor ON offers (doctor_id, status);
CREATE INDEX offers_appointment ON offers (appointment_id);

-- Results of idempotent calls (accept), keyed by the caller's key.
CREATE TABLE idempotency (
    user_id    TEXT NOT NULL,
    key        TEXT NOT NULL,
    operation  TEXT NOT NULL,
    result     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, key, operation)
);

-- The audit trail of every service (from the CAREHUB_AUDIT stream) and of this one.
CREATE TABLE audit_log (
    event_id   TEXT PRIMARY KEY,
    at         BIGINT NOT NULL,
    service    TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    actor_role TEXT NOT NULL,
    subject_id TEXT,
    action     TEXT NOT NULL,
    reason     TEXT
);
CREATE INDEX audit_log_subject ON audit_log (subject_id, event_id);

CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    subject         TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL
);
