-- A move of a confirmed appointment waiting for the other side; the current time holds until
-- it is accepted, then start/end are swapped in one update (the overlap guard applies).
ALTER TABLE appointments ADD COLUMN change_by TEXT CHECK (change_by IN ('patient', 'doctor'));
ALTER TABLE appointments ADD COLUMN change_window_start BIGINT;
ALTER TABLE appointments ADD COLUMN change_window_end BIGINT;
ALTER TABLE appointments ADD COLUMN change_start BIGINT;
ALTER TABLE appointments ADD COLUMN change_end BIGINT;
