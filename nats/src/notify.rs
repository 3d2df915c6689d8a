//! Wire types of the notify domain (being built).
