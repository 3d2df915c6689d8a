-- The languages a doctor consults in: a JSON array of ISO 639-1 codes, searchable like
-- specialties. Existing doctors list none until they say.
ALTER TABLE doctors ADD COLUMN languages TEXT NOT NULL DEFAULT '[]';
