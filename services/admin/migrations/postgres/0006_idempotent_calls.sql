-- Idempotent calls (the `Idempotency-Key` header): one row per caller and key, claimed before
-- the call runs ('running') and holding its answer once it has one ('done'): the appointment
-- it returned or the 4xx error it answered. A 5xx or a timeout deletes the row, so a retry
-- runs again. Rows are deleted after CAREHUB_IDEMPOTENCY_TTL (expires_at).
CREATE TABLE idempotent_calls (
    caller       TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('running', 'done')),
    response     TEXT,
    started_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (caller, key),
    CHECK (state = 'running' OR response IS NOT NULL)
);
CREATE INDEX idempotent_calls_expiry ON idempotent_calls (expires_at);

-- Free-slot queries read a doctor's (and a patient's) confirmed times in a range.
CREATE INDEX appointments_doctor_confirmed ON appointments (doctor_id, start_at) WHERE status = 'confirmed';
CREATE INDEX appointments_patient_confirmed ON appointments (patient_id, start_at) WHERE status = 'confirmed';
