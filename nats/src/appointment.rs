//! Wire types of the appointment domain (being built).
