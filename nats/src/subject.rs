//! Subject names. Requests live under `carehub.<service>.`, events under `carehub.events.`.
//!
//! Subjects under [`API_PREFIX`] carry a verified caller identity in their headers; deployment
//! permissions let only the gateway and the hub publish there, which is what lets services
//! trust that identity.

/// Prefix of every identity-carrying request subject.
pub const API_PREFIX: &str = "carehub.api";

/// Auth service subjects.
pub mod auth {
    /// Micro service name of the auth service.
    pub const SERVICE: &str = "auth";
    pub const REGISTER: &str = "carehub.api.auth.register";
    pub const LOGIN: &str = "carehub.api.auth.login";
    pub const REFRESH: &str = "carehub.api.auth.refresh";
    pub const LOGOUT: &str = "carehub.api.auth.logout";
    pub const ME: &str = "carehub.api.auth.me";
    pub const CHANGE_PASSWORD: &str = "carehub.api.auth.password.change";
    pub const RESET_REQUEST: &str = "carehub.api.auth.password.reset_request";
    pub const RESET_CONFIRM: &str = "carehub.api.auth.password.reset_confirm";
    pub const ADMIN_LIST_USERS: &str = "carehub.api.auth.admin.users.list";
    pub const ADMIN_GET_USER: &str = "carehub.api.auth.admin.users.get";
    pub const ADMIN_SET_STATUS: &str = "carehub.api.auth.admin.users.set_status";
    /// Token verification: any trusted component may ask (gateway, hub).
    pub const VERIFY: &str = "carehub.auth.verify";
}

/// Event subjects (core NATS unless noted).
pub mod events {
    /// Every revocation: logout, family revoke, user disabled, password change.
    /// Core NATS on purpose: a missed event is covered by clearing caches on reconnect.
    pub const AUTH_REVOKED: &str = "carehub.events.auth.revoked";
    /// Password reset tokens for the notification side. Readable by the notify service alone;
    /// never stored in a stream, so the token does not outlive its delivery.
    pub const PASSWORD_RESET: &str = "carehub.notify.password_reset";
    /// Account events (durable, stream `CAREHUB_USERS`): `carehub.events.user.<kind>`.
    pub const USER_PREFIX: &str = "carehub.events.user";
}
