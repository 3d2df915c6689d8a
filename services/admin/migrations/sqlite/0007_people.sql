-- Account names, kept from the auth service's account events (CAREHUB_USERS), so appointments
-- and the audit log name the patient, the doctor and the actor without asking another service.
CREATE TABLE people (
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    role         TEXT NOT NULL,
    -- The event's time: an older event than the stored one changes nothing.
    updated_at   BIGINT NOT NULL
);
