//! Wire types of the patient domain (being built).
