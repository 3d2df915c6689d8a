//! Wire types of the doctor domain (being built).
