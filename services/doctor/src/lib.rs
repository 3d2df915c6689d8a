//! carehub doctor service (being built).
