//! carehub schedule service (being built).
