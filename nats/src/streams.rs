//! The JetStream streams carehub's durable events live in: each one's name and subjects
//! (`carehub_bus::streams::ensure` creates them).

/// One stream's name and subjects.
#[derive(Debug, Clone, Copy)]
pub struct StreamSpec {
    pub name: &'static str,
    pub subjects: &'static str,
    pub description: &'static str,
}

/// Declares each stream as a `pub const` [`StreamSpec`]: `NAME = "stream", "subjects",
/// "description";` one line each, so the streams read as a table.
macro_rules! streams {
    ($($(#[$doc:meta])* $const:ident = $name:literal, $subjects:literal, $description:literal;)*) => {$(
        $(#[$doc])*
        pub const $const: StreamSpec = StreamSpec {
            name: $name,
            subjects: $subjects,
            description: $description,
        };
    )*};
}

streams! {
    /// Account lifecycle events from the auth service (registered, status changed).
    USERS = "CAREHUB_USERS", "carehub.events.user.>", "carehub account events";
    /// Doctor profile and availability changes from the doctor service.
    DOCTORS = "CAREHUB_DOCTORS", "carehub.events.doctor.>", "carehub doctor profile and availability events";
    /// Appointment and offer transitions from the admin service.
    APPOINTMENTS = "CAREHUB_APPOINTMENTS", "carehub.events.appointment.>", "carehub appointment lifecycle events";
    /// Audit entries (who read or changed whose data) from every service.
    AUDIT = "CAREHUB_AUDIT", "carehub.events.audit.>", "carehub audit trail";
}

/// Every stream carehub uses.
pub const ALL: [StreamSpec; 4] = [USERS, DOCTORS, APPOINTMENTS, AUDIT];
