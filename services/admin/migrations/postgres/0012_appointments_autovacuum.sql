-- PostgreSQL only (SQLite has no autovacuum, and this directory's numbers need not match its).
--
-- Slot listings read the taken times through covering indexes (appointments_doctor_taken,
-- appointments_patient_taken): index-only scans, which still read each row from the table
-- unless its page is marked all-visible, and only VACUUM marks pages. With the defaults a table
-- is vacuumed after 20% of its rows are new or changed (plus 1,000 or 50): at 100,000
-- appointments, 20,000 bookings or changes go by first, so the weeks being booked, the ones
-- listed most, stay unmarked. A week of 164 appointments then costs 0.17 ms per listing instead
-- of 0.12 ms (docs/BENCHMARKS.md). Vacuum and analyze after 1% of the table (at least 100 rows):
-- such a vacuum reads only the pages changed since the last one.
ALTER TABLE appointments SET (
  autovacuum_vacuum_insert_threshold = 100,
  autovacuum_vacuum_insert_scale_factor = 0.01,
  autovacuum_vacuum_threshold = 100,
  autovacuum_vacuum_scale_factor = 0.01,
  autovacuum_analyze_threshold = 100,
  autovacuum_analyze_scale_factor = 0.01
);
