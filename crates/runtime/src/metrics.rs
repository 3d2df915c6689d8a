//! Prometheus metrics on a listener of their own, off unless `CAREHUB_METRICS_ADDR` (or, for
//! `carehub serve <component>`, `CAREHUB_<COMPONENT>_METRICS_ADDR`) names an address.
//!
//! Components record through the [`metrics`] facade; without an installed recorder every
//! record is a no-op, so metrics cost nothing when they are off. [`install`] sets the one
//! process-wide recorder, and [`serve`] answers `GET /metrics` in the Prometheus text format and
//! nothing else: no API route is ever reachable on this listener. Every metric carries a
//! `component` label, so one listener can expose every component of `carehub up`. Names and
//! labels are listed in `docs/METRICS.md`.

use crate::config::{ConfigError, Env};
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics::{describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Histogram buckets (seconds) of every `*_seconds` metric.
pub(crate) const LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded into buckets between scrapes (bounds memory).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Where the metrics listener binds, if anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    pub addr: Option<SocketAddr>,
}

impl MetricsConfig {
    /// Reads `CAREHUB_<COMPONENT>_METRICS_ADDR` when `component` is given (one component in this
    /// process), falling back to `CAREHUB_METRICS_ADDR`. Unset means no listener.
    ///
    /// # Errors
    /// When a value is not a socket address; the error names the variable.
    pub fn from_env(env: &Env, component: Option<&str>) -> Result<Self, ConfigError> {
        if let Some(c) = component {
            let var = format!("CAREHUB_{}_METRICS_ADDR", c.to_ascii_uppercase());
            if let Some(addr) = env.opt::<SocketAddr>(&var)? {
                return Ok(Self { addr: Some(addr) });
            }
        }
        Ok(Self {
            addr: env.opt("CAREHUB_METRICS_ADDR")?,
        })
    }
}

/// Whether a recorder is installed, so callers can skip work only metrics need (a backlog
/// count, a label lookup).
pub fn enabled() -> bool {
    HANDLE.get().is_some()
}

/// Adds one to a gauge for as long as it lives: an open socket, a queued message.
#[derive(Debug)]
pub struct Held(metrics::Gauge);

impl Held {
    pub fn new(gauge: metrics::Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Installs the process-wide Prometheus recorder (once; later calls return the same handle).
///
/// # Errors
/// When another recorder was installed outside this module.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .build_recorder();
    let handle = recorder.handle();
    if HANDLE.set(handle.clone()).is_err() {
        // Another thread won the race; its recorder is the global one.
        return HANDLE
            .get()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("metrics recorder vanished"));
    }
    metrics::set_global_recorder(recorder)
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))?;
    describe();
    Ok(handle)
}

/// Serves `GET /metrics` on `listener` until `stop` is cancelled; every other path is 404.
///
/// # Errors
/// When serving fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "metrics listening");
    }
    let upkeep = handle.clone();
    let upkeep_stop = stop.clone();
    let upkeep_task = tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            tokio::select! {
                () = upkeep_stop.cancelled() => break,
                _ = every.tick() => upkeep.run_upkeep(),
            }
        }
    });
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        handle.render(),
                    )
                }
            }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n").into_response() });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await;
    upkeep_task.abort();
    Ok(served?)
}

/// `HELP` texts of the metrics components record.
fn describe() {
    describe_counter!(
        "carehub_http_requests_total",
        "HTTP requests answered by the gateway, by route template, method and status class"
    );
    describe_histogram!(
        "carehub_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time the gateway took to answer, by route template, method and status class"
    );
    describe_counter!(
        "carehub_rpc_requests_total",
        "NATS requests a service handled, by endpoint and outcome (ok, rejected, error)"
    );
    describe_counter!(
        "carehub_rpc_errors_total",
        "NATS requests a service answered with an error, by endpoint and error code"
    );
    describe_histogram!(
        "carehub_rpc_duration_seconds",
        metrics::Unit::Seconds,
        "Time a service took to handle a NATS request, by endpoint"
    );
    describe_gauge!(
        "carehub_nats_connected",
        "1 while the component's NATS connection is up"
    );
    describe_counter!(
        "carehub_nats_reconnects_total",
        "NATS connections re-established after the first one"
    );
    describe_counter!("carehub_nats_disconnects_total", "NATS connections lost");
    describe_counter!(
        "carehub_nats_errors_total",
        "NATS client and server errors reported on the connection, by kind"
    );
    describe_counter!(
        "carehub_nats_request_errors_total",
        "NATS requests this component made that got no answer, by subject and kind"
    );
    describe_gauge!(
        "carehub_websockets_open",
        "Open websockets (gateway: forwarded /ws; hub: signed-in sockets)"
    );
    describe_counter!(
        "carehub_hub_frames_total",
        "Websocket frames the hub received (in) and sent (out)"
    );
    describe_counter!(
        "carehub_hub_disconnects_total",
        "Hub sockets closed, by reason (too_slow: the client did not read its frames)"
    );
    describe_gauge!(
        "carehub_outbox_backlog",
        "Outbox events written but not yet published to JetStream"
    );
    describe_counter!(
        "carehub_outbox_published_total",
        "Outbox events published to JetStream"
    );
    describe_counter!(
        "carehub_outbox_publish_failures_total",
        "Failed attempts to publish an outbox event (retried with back-off)"
    );
    describe_counter!(
        "carehub_events_undecodable_total",
        "Durable events a consumer could not decode, terminated unapplied, by consumer"
    );
    describe_counter!(
        "carehub_events_retries_exhausted_total",
        "Durable events still failing on their last delivery, terminated unapplied, by consumer"
    );
    describe_gauge!(
        "carehub_actor_mailbox_depth",
        "Messages queued for actors of a kind, including the one being handled"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_address_wins_over_the_shared_one() {
        let env = Env::from_pairs([
            ("CAREHUB_METRICS_ADDR", "127.0.0.1:9100"),
            ("CAREHUB_AUTH_METRICS_ADDR", "127.0.0.1:9101"),
        ]);
        let auth = MetricsConfig::from_env(&env, Some("auth")).unwrap();
        assert_eq!(auth.addr, Some("127.0.0.1:9101".parse().unwrap()));
        let doctor = MetricsConfig::from_env(&env, Some("doctor")).unwrap();
        assert_eq!(doctor.addr, Some("127.0.0.1:9100".parse().unwrap()));
        let all = MetricsConfig::from_env(&env, None).unwrap();
        assert_eq!(all.addr, Some("127.0.0.1:9100".parse().unwrap()));
    }

    #[test]
    fn off_by_default_and_a_bad_address_names_its_variable() {
        let none = MetricsConfig::from_env(&Env::default(), Some("auth")).unwrap();
        assert_eq!(none.addr, None);
        let env = Env::from_pairs([("CAREHUB_GATEWAY_METRICS_ADDR", "port 9")]);
        let err = MetricsConfig::from_env(&env, Some("gateway")).unwrap_err();
        assert_eq!(err.var, "CAREHUB_GATEWAY_METRICS_ADDR");
    }
}
