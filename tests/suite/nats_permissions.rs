//! The NATS permissions of `nats/conf/permissions.conf`, one test per rule, against the same
//! secured nats-server every other test uses. A refused publish or subscription is answered by
//! the server with `-ERR 'Permissions Violation …'`, which async-nats reports as a server error
//! event: each test waits for that error and also checks that nothing got through.

use crate::harness::{Backend, Clinic, token, unique_email};
use async_nats::{Client, Event};
use carehub_bus::ContextHeaders as _;
use carehub_nats::{CallContext, Principal, Role, UserStatus};
use futures::StreamExt as _;
use serde_json::json;
use std::time::Duration;
use tokio::sync::mpsc;

/// carehub's NATS users other than the two that may send identity-carrying requests.
const NOT_TRUSTED: [&str; 6] = ["auth", "doctor", "patient", "notify", "admin", "ops"];

/// A client connected as `user` and the server errors it receives.
struct Watched {
    nc: Client,
    errors: mpsc::UnboundedReceiver<String>,
}

async fn connect(clinic: &Clinic, user: &str) -> Watched {
    let (tx, errors) = mpsc::unbounded_channel();
    let nc = clinic
        .nats
        .options_as(user)
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let Event::ServerError(e) = event {
                    let _ = tx.send(e.to_string());
                }
            }
        })
        .connect(clinic.nats.url())
        .await
        .unwrap_or_else(|e| panic!("connect as {user}: {e}"));
    Watched { nc, errors }
}

impl Watched {
    /// Waits for the server to refuse `what` (`publish` or `subscription`) on `subject`.
    async fn refused(&mut self, what: &str, subject: &str) {
        // The PONG of a flush comes after any error the server sent before it.
        self.nc.flush().await.expect("flush");
        let wanted = format!("permissions violation for {what} to \"{subject}\"");
        let found = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(e) = self.errors.recv().await {
                if e.to_ascii_lowercase()
                    .contains(&wanted.to_ascii_lowercase())
                {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            matches!(found, Ok(true)),
            "the server did not refuse {what} to {subject}"
        );
    }

    /// Whether no error arrived (after a flush).
    async fn no_errors(&mut self) -> bool {
        self.nc.flush().await.expect("flush");
        self.errors.try_recv().is_err()
    }
}

fn admin_principal() -> Principal {
    Principal {
        user_id: uuid::Uuid::now_v7().to_string(),
        role: Role::Admin,
        status: UserStatus::Active,
        jti: "forged".into(),
        session_id: "forged".into(),
        expires_at: i64::MAX,
    }
}

/// A request as the gateway would send it, claiming to come from an admin.
async fn forged(
    nc: &Client,
    subject: &str,
) -> Result<async_nats::Message, async_nats::RequestError> {
    let ctx = CallContext {
        principal: Some(admin_principal()),
        ..CallContext::internal()
    };
    let request = async_nats::Request::new()
        .payload(b"{}".as_slice().into())
        .headers(ctx.to_headers())
        .timeout(Some(Duration::from_secs(2)));
    nc.send_request(subject.to_owned(), request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_credentials_or_with_a_wrong_password_is_refused() {
    let clinic = Clinic::start(Backend::Sqlite).await;
    let anonymous = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .max_reconnects(Some(1))
        .connect(clinic.nats.url())
        .await;
    if let Ok(nc) = anonymous {
        // The connection may look open until the server's verdict arrives.
        assert!(nc.flush().await.is_err(), "an anonymous client was served");
    }
    let wrong = async_nats::ConnectOptions::with_user_and_password("auth".into(), "guess".into())
        .connect(clinic.nats.url())
        .await;
    assert!(wrong.is_err(), "a wrong password was accepted");
    // The right password works.
    let mut auth = connect(&clinic, "auth").await;
    assert!(auth.no_errors().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_user_cannot_publish_on_another_services_subjects() {
    let clinic = Clinic::start(Backend::Sqlite).await;
    // The patient service forging an appointment event into admin's stream.
    let mut patient = connect(&clinic, "patient").await;
    let js = async_nats::jetstream::new(patient.nc.clone());
    let subject = "carehub.events.appointment.confirmed";
    let ack = js
        .publish(subject, json!({"forged": true}).to_string().into())
        .await
        .expect("handed to the client");
    patient.refused("publish", subject).await;
    assert!(
        tokio::time::timeout(Duration::from_secs(2), ack)
            .await
            .map_or(true, |r| r.is_err()),
        "the stream acknowledged a forged event"
    );
    let stored = clinic
        .stream_messages("CAREHUB_APPOINTMENTS", "carehub.events.appointment.>")
        .await;
    assert!(
        stored.iter().all(|e| e.get("forged").is_none()),
        "a forged event reached the stream"
    );

    // A service asking a question only another service may ask (patient asks admin about care
    // relations; doctor may not), and a service faking another's revocation broadcast.
    let mut doctor = connect(&clinic, "doctor").await;
    doctor
        .nc
        .publish("carehub.admin.care_relation", "{}".into())
        .await
        .unwrap();
    doctor
        .refused("publish", "carehub.admin.care_relation")
        .await;
    // Only the doctor service hands the admin service a doctor's state (a forged one would
    // change that doctor's free slots).
    patient
        .nc
        .publish("carehub.admin.apply_doctor", "{}".into())
        .await
        .unwrap();
    patient
        .refused("publish", "carehub.admin.apply_doctor")
        .await;
    let mut notify = connect(&clinic, "notify").await;
    notify
        .nc
        .publish("carehub.events.auth.revoked", "{}".into())
        .await
        .unwrap();
    notify
        .refused("publish", "carehub.events.auth.revoked")
        .await;
    // Nor may one serve another's endpoints (a rogue instance answering for auth).
    let mut admin = connect(&clinic, "admin").await;
    let _sub = admin.nc.subscribe("carehub.auth.verify").await.unwrap();
    admin.refused("subscription", "carehub.auth.verify").await;
    let _sub = patient.nc.subscribe("carehub.api.auth.>").await.unwrap();
    patient.refused("subscription", "carehub.api.auth.>").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_cannot_read_another_components_replies() {
    let clinic = Clinic::start(Backend::Sqlite).await;
    let mut spy = connect(&clinic, "patient").await;
    let mut stolen = spy.nc.subscribe("_INBOX_gateway.>").await.unwrap();
    spy.refused("subscription", "_INBOX_gateway.>").await;
    let mut wide = spy.nc.subscribe("_INBOX.>").await.unwrap();
    spy.refused("subscription", "_INBOX.>").await;

    // The gateway user asks auth something; the answer goes to the gateway's inbox only.
    let gateway = clinic.nats_client_as("gateway").await;
    let reply = gateway
        .request(
            carehub_nats::auth::subject::VERIFY,
            json!({"token": "not-a-token"}).to_string().into(),
        )
        .await
        .expect("auth answers the gateway");
    assert!(reply.subject.starts_with("_INBOX_gateway."));
    // Had the spy's subscription been accepted, the reply would be queued before this PONG.
    spy.nc.flush().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(1), stolen.next())
            .await
            .is_err()
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(1), wide.next())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_gateway_and_the_hub_may_send_identity_carrying_requests() {
    let clinic = Clinic::start(Backend::Sqlite).await;
    let subject = carehub_nats::auth::subject::ADMIN_LIST_USERS;
    for user in NOT_TRUSTED {
        let mut w = connect(&clinic, user).await;
        let answer = forged(&w.nc, subject).await;
        w.refused("publish", subject).await;
        assert!(
            answer.is_err(),
            "{user} got an answer to a forged admin request"
        );
    }
    // The hub may send only the two it needs (reading an appointment and listing appointments
    // as the signed-in user).
    let mut hub = connect(&clinic, "hub").await;
    let _ = forged(&hub.nc, subject).await;
    hub.refused("publish", subject).await;

    // The gateway may: the same forged principal is answered (the trust the rule protects).
    let gateway = connect(&clinic, "gateway").await;
    let reply = forged(&gateway.nc, subject).await.expect("an answer");
    let page: serde_json::Value = serde_json::from_slice(&reply.payload).expect("a user page");
    assert!(page["users"].is_array(), "unexpected reply: {page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_notification_service_reads_password_reset_tokens() {
    let clinic = Clinic::start(Backend::Sqlite).await;
    let reset = carehub_nats::auth::subject::PASSWORD_RESET;
    let mut spies = Vec::new();
    for user in [
        "auth", "doctor", "patient", "admin", "hub", "gateway", "ops",
    ] {
        let mut w = connect(&clinic, user).await;
        let sub = w.nc.subscribe(reset).await.unwrap();
        w.refused("subscription", reset).await;
        let wide = w.nc.subscribe("carehub.notify.>").await.unwrap();
        w.refused("subscription", "carehub.notify.>").await;
        spies.push((w, sub, wide));
    }
    let (_nc, mut notify) = clinic.reset_subscription().await;

    let email = unique_email("reset");
    let session = clinic.patient(&email).await;
    assert!(!token(&session).is_empty());
    let r = clinic
        .http
        .post(clinic.url("/api/auth/password/reset-request"))
        .json(&json!({"email": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let msg = tokio::time::timeout(Duration::from_secs(10), notify.next())
        .await
        .expect("notify receives the reset token")
        .unwrap();
    assert!(!msg.payload.is_empty());
    for (w, sub, wide) in &mut spies {
        w.nc.flush().await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(1), sub.next())
                .await
                .is_err()
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(1), wide.next())
                .await
                .is_err()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_see_services_and_streams_but_cannot_call_or_change_them() {
    let clinic = Clinic::start(Backend::Sqlite).await;
    let pings = clinic.srv("PING", "auth", 1).await;
    assert_eq!(pings.len(), 1, "ops pings auth");
    let mut ops = connect(&clinic, "ops").await;
    let js = async_nats::jetstream::new(ops.nc.clone());
    let info = js
        .get_stream("CAREHUB_APPOINTMENTS")
        .await
        .expect("ops reads stream info");
    assert_eq!(info.cached_info().config.name, "CAREHUB_APPOINTMENTS");
    assert!(ops.no_errors().await);

    let _ = forged(&ops.nc, carehub_nats::auth::subject::ME).await;
    ops.refused("publish", carehub_nats::auth::subject::ME)
        .await;
    let deleted = js.delete_stream("CAREHUB_APPOINTMENTS").await;
    ops.refused("publish", "$JS.API.STREAM.DELETE.CAREHUB_APPOINTMENTS")
        .await;
    assert!(deleted.is_err());
    assert!(js.get_stream("CAREHUB_APPOINTMENTS").await.is_ok());
}

/// A relay reads back what it published and a consumer checks its position
/// (`$JS.API.STREAM.MSG.GET` of the streams each writes or reads), the owner of a stream may set
/// its duplicate window, and a service deletes only its own durables; no other component reads
/// a stream by sequence (operators may: `nats stream get`) or changes what it does not own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_read_by_sequence_and_changed_only_by_the_services_that_use_them() {
    let clinic = Clinic::start(Backend::Sqlite).await;
    // Something to read: auth's relay publishes the registration.
    clinic.patient(&crate::harness::unique_email("perm")).await;
    let allowed = [
        ("auth", "CAREHUB_USERS"),
        ("auth", "CAREHUB_AUDIT"),
        ("doctor", "CAREHUB_DOCTORS"),
        ("doctor", "CAREHUB_USERS"),
        ("patient", "CAREHUB_AUDIT"),
        ("patient", "CAREHUB_USERS"),
        ("notify", "CAREHUB_APPOINTMENTS"),
        ("admin", "CAREHUB_APPOINTMENTS"),
        ("admin", "CAREHUB_DOCTORS"),
    ];
    for (user, stream) in allowed {
        let mut w = connect(&clinic, user).await;
        let js = async_nats::jetstream::new(w.nc.clone());
        let s = js.get_stream(stream).await.expect("stream info");
        // A missing sequence answers "no message found": the request itself was allowed.
        let _ = s.get_raw_message(1).await;
        assert!(w.no_errors().await, "{user} reads {stream} by sequence");
    }
    let refused = [
        ("patient", "CAREHUB_APPOINTMENTS"),
        ("notify", "CAREHUB_DOCTORS"),
        ("doctor", "CAREHUB_APPOINTMENTS"),
        ("auth", "CAREHUB_DOCTORS"),
        ("gateway", "CAREHUB_USERS"),
    ];
    for (user, stream) in refused {
        let mut w = connect(&clinic, user).await;
        w.nc.publish(
            format!("$JS.API.STREAM.MSG.GET.{stream}"),
            "{\"seq\":1}".into(),
        )
        .await
        .expect("publish");
        w.refused("publish", &format!("$JS.API.STREAM.MSG.GET.{stream}"))
            .await;
    }
    for (user, subject) in [
        ("patient", "$JS.API.STREAM.UPDATE.CAREHUB_USERS"),
        ("notify", "$JS.API.STREAM.UPDATE.CAREHUB_APPOINTMENTS"),
        ("auth", "$JS.API.STREAM.UPDATE.CAREHUB_DOCTORS"),
        // A durable is deleted only by its own service.
        (
            "patient",
            "$JS.API.CONSUMER.DELETE.CAREHUB_USERS.notify-service",
        ),
        (
            "notify",
            "$JS.API.CONSUMER.DELETE.CAREHUB_APPOINTMENTS.admin-audit",
        ),
        (
            "gateway",
            "$JS.API.CONSUMER.DELETE.CAREHUB_USERS.patient-service",
        ),
    ] {
        let mut w = connect(&clinic, user).await;
        w.nc.publish(subject, "{}".into()).await.expect("publish");
        w.refused("publish", subject).await;
    }
}

/// The version lists and batch gets copies are reconciled with (`carehub.auth.account_versions`,
/// `carehub.auth.accounts`, `carehub.doctor.versions`, `carehub.doctor.snapshots`) answer the
/// services that keep those copies, and nobody else may ask: they hold every account's email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_services_that_keep_a_copy_may_ask_for_versions() {
    use carehub_nats::sync::subject as sync;
    let clinic = Clinic::start(Backend::Sqlite).await;
    let email = unique_email("versions");
    clinic.patient(&email).await;
    let asks = [
        (
            sync::ACCOUNT_VERSIONS,
            &["doctor", "patient", "notify", "admin"][..],
        ),
        (
            sync::ACCOUNTS,
            &["doctor", "patient", "notify", "admin"][..],
        ),
        (sync::DOCTOR_VERSIONS, &["admin"][..]),
        (sync::DOCTORS, &["admin"][..]),
    ];
    for (subject, allowed) in asks {
        let body = if subject.ends_with("versions") {
            json!({})
        } else {
            json!({"ids": []})
        };
        let payload = serde_json::to_vec(&body).unwrap();
        for user in [
            "auth", "doctor", "patient", "notify", "admin", "hub", "gateway", "ops",
        ] {
            let mut w = connect(&clinic, user).await;
            if allowed.contains(&user) {
                let reply =
                    w.nc.request(subject, payload.clone().into())
                        .await
                        .unwrap_or_else(|e| panic!("{user} asks {subject}: {e}"));
                let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
                assert!(
                    v["items"].is_array() || v["accounts"].is_array() || v["doctors"].is_array(),
                    "{user} on {subject}: {v}"
                );
                assert!(w.no_errors().await, "{user} on {subject}");
            } else {
                w.nc.publish(subject, payload.clone().into()).await.unwrap();
                w.refused("publish", subject).await;
            }
        }
    }
    // What the auth service answers: the new account with its version, and its state by id.
    let mut patient = connect(&clinic, "patient").await;
    let page: serde_json::Value = serde_json::from_slice(
        &patient
            .nc
            .request(sync::ACCOUNT_VERSIONS, b"{}".to_vec().into())
            .await
            .unwrap()
            .payload,
    )
    .unwrap();
    let items = page["items"].as_array().unwrap();
    assert!(!items.is_empty(), "{page}");
    let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    let found: serde_json::Value = serde_json::from_slice(
        &patient
            .nc
            .request(
                sync::ACCOUNTS,
                serde_json::to_vec(&json!({"ids": ids})).unwrap().into(),
            )
            .await
            .unwrap()
            .payload,
    )
    .unwrap();
    let accounts = found["accounts"].as_array().unwrap();
    assert!(
        accounts
            .iter()
            .any(|a| a["user"]["email"] == email.as_str() && a["version"] == 1),
        "{found}"
    );
    assert!(patient.no_errors().await);
}
