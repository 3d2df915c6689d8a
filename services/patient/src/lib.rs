//! carehub patient service (being built).
