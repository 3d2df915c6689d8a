//! carehub admin service (being built).
