//! The JetStream streams carehub's durable events live in: each one's name and subjects
//! (`carehub_bus::streams::ensure` creates them).

/// One stream's name and subjects.
#[derive(Debug, Clone, Copy)]
pub struct StreamSpec {
    pub name: &'static str,
    pub subjects: &'static str,
    pub description: &'static str,
}

/// Account lifecycle events from the auth service (registered, status changed).
pub const USERS: StreamSpec = StreamSpec {
    name: "CAREHUB_USERS",
    subjects: "carehub.events.user.>",
    description: "carehub account events",
};

/// Doctor profile and availability changes from the doctor service.
pub const DOCTORS: StreamSpec = StreamSpec {
    name: "CAREHUB_DOCTORS",
    subjects: "carehub.events.doctor.>",
    description: "carehub doctor profile and availability events",
};

/// Appointment and offer transitions from the admin service.
pub const APPOINTMENTS: StreamSpec = StreamSpec {
    name: "CAREHUB_APPOINTMENTS",
    subjects: "carehub.events.appointment.>",
    description: "carehub appointment lifecycle events",
};

/// Audit entries (who read or changed whose data) from every service.
pub const AUDIT: StreamSpec = StreamSpec {
    name: "CAREHUB_AUDIT",
    subjects: "carehub.events.audit.>",
    description: "carehub audit trail",
};

/// Every stream carehub uses.
pub const ALL: [StreamSpec; 4] = [USERS, DOCTORS, APPOINTMENTS, AUDIT];
