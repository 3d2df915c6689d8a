//! Liveness and readiness probes (not rate limited).

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use carehub_bus::Bus;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

/// How long a required service has to answer its ping.
const PING_TIMEOUT: Duration = Duration::from_millis(500);

/// The process is alive.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Health {
    #[schema(example = "ok")]
    pub(crate) status: String,
}

/// Whether the gateway can serve: NATS connected and every required service answering.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Readiness {
    /// `ready` or `unavailable`.
    pub(crate) status: String,
    /// `connected` or `disconnected`.
    pub(crate) nats: String,
    /// Required services that did not answer a ping.
    pub(crate) missing: Vec<String>,
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive", body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: NATS is connected and every required service answers a ping.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Ready", body = Readiness),
    (status = 503, description = "Not ready", body = Readiness)))]
pub(crate) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let r = readiness(&state.bus, &state.cfg.required_services).await;
    let status = if r.missing.is_empty() && r.nats == "connected" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(r))
}

/// Pings every required service concurrently over the micro services protocol.
pub(crate) async fn readiness(bus: &Bus, required: &[String]) -> Readiness {
    let connected = bus.is_connected();
    let missing = if connected {
        let pings = required.iter().map(|name| async move {
            let subject = carehub_bus::micro::verb_subject("PING", Some(name));
            let ping = bus.client().request(subject, bytes::Bytes::new());
            match tokio::time::timeout(PING_TIMEOUT, ping).await {
                Ok(Ok(_)) => None,
                _ => Some(name.clone()),
            }
        });
        futures::future::join_all(pings)
            .await
            .into_iter()
            .flatten()
            .collect()
    } else {
        required.to_vec()
    };
    let ready = connected && missing.is_empty();
    Readiness {
        status: if ready { "ready" } else { "unavailable" }.into(),
        nats: if connected {
            "connected"
        } else {
            "disconnected"
        }
        .into(),
        missing,
    }
}
