//! Every route, one module per part of the API:
//! - [`health`] the liveness and readiness probes;
//! - [`auth`] sign-up, sign-in, sessions and passwords;
//! - [`accounts`] account administration (admins);
//! - [`doctors`] the directory, doctor profiles, schedules and free slots;
//! - [`patients`] profiles and medical records;
//! - [`appointments`] booking, offers, the lifecycle and the admin queue;
//! - [`notifications`] the bell's notifications;
//! - [`ws`] the hub's websocket, forwarded;
//! - [`docs`] the OpenAPI document and the docs page.
//!
//! Handlers decode, make one call, encode. [`api`] collects the documented routes together with
//! their OpenAPI operations, so the document cannot drift from what is served.

pub(crate) mod accounts;
pub(crate) mod appointments;
pub(crate) mod auth;
pub(crate) mod docs;
pub(crate) mod doctors;
pub(crate) mod health;
pub(crate) mod notifications;
pub(crate) mod patients;
pub(crate) mod ws;

use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The documented routes and their OpenAPI description.
pub(crate) fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::openapi::base())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me, auth::update_me))
        .routes(routes!(auth::change_password))
        .routes(routes!(auth::reset_request))
        .routes(routes!(auth::reset_confirm))
        .routes(routes!(accounts::list_users))
        .routes(routes!(accounts::get_user))
        .routes(routes!(accounts::approve))
        .routes(routes!(accounts::reject))
        .routes(routes!(accounts::disable))
        .routes(routes!(accounts::enable))
        .routes(routes!(doctors::search))
        .routes(routes!(doctors::get_profile, doctors::put_profile))
        .routes(routes!(
            doctors::get_availability,
            doctors::put_availability
        ))
        .routes(routes!(doctors::add_time_off))
        .routes(routes!(doctors::remove_time_off))
        .routes(routes!(doctors::get_doctor))
        .routes(routes!(doctors::slots))
        .routes(routes!(notifications::list))
        .routes(routes!(notifications::unread_count))
        .routes(routes!(notifications::mark_read))
        .routes(routes!(notifications::mark_unread))
        .routes(routes!(notifications::mark_all_read))
        .routes(routes!(notifications::delete))
        .routes(routes!(appointments::request, appointments::list))
        .routes(routes!(appointments::book))
        .routes(routes!(appointments::get))
        .routes(routes!(appointments::offers))
        .routes(routes!(appointments::accept))
        .routes(routes!(appointments::decline))
        .routes(routes!(appointments::reschedule))
        .routes(routes!(appointments::propose))
        .routes(routes!(appointments::answer_proposal))
        .routes(routes!(appointments::cancel))
        .routes(routes!(appointments::complete))
        .routes(routes!(appointments::no_show))
        .routes(routes!(appointments::admin_decline))
        .routes(routes!(appointments::admin_reroute))
        .routes(routes!(
            appointments::list_groups,
            appointments::create_group
        ))
        .routes(routes!(appointments::replace_group))
        .routes(routes!(appointments::list_groups_public))
        .routes(routes!(appointments::audit))
        .routes(routes!(patients::get_my_profile, patients::put_my_profile))
        .routes(routes!(patients::get_my_record, patients::put_my_record))
        .routes(routes!(patients::read_record))
        .routes(routes!(patients::read_profile))
}
