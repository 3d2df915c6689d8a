-- The taken-times query of a slot listing reads a doctor's confirmed appointments by start and
-- needs their ends too. With end_at in the index (and status, which SQLite must find there) it
-- reads no table row. It replaces appointments_doctor_confirmed (doctor_id, start_at): every
-- query that used that one finds it as this index's prefix.
CREATE INDEX appointments_doctor_taken ON appointments (doctor_id, start_at, end_at, status)
  WHERE status = 'confirmed';
DROP INDEX appointments_doctor_confirmed;
-- The new times doctors proposed for a move, by doctor and start, read by range instead of
-- scanning every confirmed appointment of the doctor.
CREATE INDEX appointments_doctor_proposed ON appointments (doctor_id, change_start, change_end)
  WHERE status = 'confirmed' AND change_by = 'doctor';
-- The patient's own confirmed appointments, the same way (PostgreSQL otherwise reads them
-- through the overlap constraint's GiST index, several times slower).
CREATE INDEX appointments_patient_taken ON appointments (patient_id, start_at, end_at, status)
  WHERE status = 'confirmed';
DROP INDEX appointments_patient_confirmed;
