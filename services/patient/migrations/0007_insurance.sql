-- A patient's insurance policies (zero to two, primary and secondary), part of the profile and
-- versioned with it: a JSON array of carehub_nats::patient::InsurancePolicy, or NULL for none.
ALTER TABLE patients ADD COLUMN insurance TEXT;
