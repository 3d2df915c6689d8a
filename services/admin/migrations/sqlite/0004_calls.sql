-- Video calls recorded by the comms hub: one row per call (the hub's call id makes a repeated
-- record harmless), and the latest call and total call time on the appointment.
CREATE TABLE calls (
    call_id        TEXT PRIMARY KEY,
    appointment_id TEXT NOT NULL REFERENCES appointments (id),
    started_at     BIGINT NOT NULL,
    ended_at       BIGINT NOT NULL
);
ALTER TABLE appointments ADD COLUMN last_call_started BIGINT;
ALTER TABLE appointments ADD COLUMN last_call_ended BIGINT;
ALTER TABLE appointments ADD COLUMN call_seconds BIGINT NOT NULL DEFAULT 0;
