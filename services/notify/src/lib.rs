//! carehub notify service (being built).
