//! Registers a carehub service with the NATS micro services protocol and serves typed endpoints.
//!
//! Every service appears in `nats micro ls`, answers `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS`,
//! and has one endpoint per [`Rpc`] type in the default queue group, so several instances share
//! the load. Handlers get the decoded request and its [`CallContext`]; errors go back as the micro
//! protocol's error headers plus our stable code.
//!
//! Every endpoint records `carehub_rpc_requests_total` (by outcome), `carehub_rpc_errors_total`
//! (by error code) and `carehub_rpc_duration_seconds` under its service's name as `component`
//! (see `docs/METRICS.md`); the handling span carries the caller's `request_id`.

use crate::bus::Bus;
use crate::error::{BusError, ErrorCode, WireError};
use crate::rpc::{CallContext, Rpc, headers};
use async_nats::service::{Service, ServiceExt};
use futures::StreamExt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Serves one endpoint per request type, each with the method of `$svc` that handles it:
/// `serve!(micro, svc, Login => login, Me => me)` inside a function returning a `Result` that a
/// [`crate::BusError`] converts into. Every method takes `(&self, &CallContext, Request)`.
#[macro_export]
macro_rules! serve {
    ($micro:expr, $svc:expr, $($req:ty => $method:ident),+ $(,)?) => {
        $(
            $micro
                .serve($svc.clone(), |s, c: $crate::CallContext, r: $req| async move { s.$method(&c, r).await })
                .await?;
        )+
    };
}

/// Name, version and description shown by `nats micro info`.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSpec {
    pub name: &'static str,
    pub version: &'static str,
    pub description: &'static str,
}

/// A running micro service. Endpoints are added with [`MicroService::serve`].
pub struct MicroService {
    service: Service,
    spec: ServiceSpec,
    tracker: TaskTracker,
    stop: CancellationToken,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for MicroService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MicroService")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl MicroService {
    /// Registers the service. `max_in_flight` bounds concurrently handled requests; further
    /// requests wait in the subscription's buffer (and eventually time out at the caller).
    ///
    /// # Errors
    /// When the service cannot subscribe to its verb subjects.
    pub async fn start(
        bus: &Bus,
        spec: ServiceSpec,
        max_in_flight: usize,
    ) -> Result<Self, BusError> {
        let service = bus
            .client()
            .service_builder()
            .description(spec.description)
            .start(spec.name, spec.version)
            .await
            .map_err(|e| BusError::Transport {
                subject: format!("$SRV.*.{}", spec.name),
                message: e.to_string(),
            })?;
        Ok(Self {
            service,
            spec,
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
        })
    }

    /// Adds the endpoint for `R` and serves it with `handler` until [`MicroService::shutdown`].
    ///
    /// # Errors
    /// When the endpoint cannot subscribe.
    pub async fn serve<R, S, F, Fut>(&self, state: S, handler: F) -> Result<(), BusError>
    where
        R: Rpc,
        S: Clone + Send + Sync + 'static,
        F: Fn(S, CallContext, R) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<R::Reply, WireError>> + Send + 'static,
    {
        let mut endpoint = self
            .service
            .endpoint_builder()
            .name(R::ENDPOINT)
            .add(R::SUBJECT)
            .await
            .map_err(|e| BusError::Transport {
                subject: R::SUBJECT.into(),
                message: e.to_string(),
            })?;
        let stop = self.stop.clone();
        let tracker = self.tracker.clone();
        let permits = self.permits.clone();
        let service = self.spec.name;
        let metrics = Arc::new(EndpointMetrics::new(service, R::ENDPOINT));
        self.tracker.spawn(async move {
            let mut stopping = false;
            loop {
                let request = if stopping {
                    match endpoint.next().await {
                        Some(r) => r,
                        None => break,
                    }
                } else {
                    tokio::select! {
                        biased;
                        next = endpoint.next() => match next { Some(r) => r, None => break },
                        () = stop.cancelled() => {
                            // Unsubscribe so new requests go to another instance, then answer
                            // the ones already delivered here: the stream ends after them.
                            stopping = true;
                            if let Err(e) = endpoint.stop().await {
                                tracing::debug!(error = %e, endpoint = R::ENDPOINT, "endpoint stop");
                                break;
                            }
                            continue;
                        }
                    }
                };
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let state = state.clone();
                let handler = handler.clone();
                let metrics = metrics.clone();
                tracker.spawn(async move {
                    let _permit = permit;
                    handle_one::<R, S, F, Fut>(service, &metrics, request, state, handler).await;
                });
            }
        });
        Ok(())
    }

    /// Stops taking requests, lets in-flight ones finish (up to `deadline`), then deregisters.
    pub async fn shutdown(self, deadline: Duration) {
        self.stop.cancel();
        self.tracker.close();
        if tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                service = self.spec.name,
                "shutdown deadline passed with requests in flight"
            );
        }
        let _ = self.service.stop().await;
    }
}

/// An endpoint's metric handles, registered once so a request records without a lookup.
struct EndpointMetrics {
    service: &'static str,
    endpoint: &'static str,
    ok: metrics::Counter,
    rejected: metrics::Counter,
    failed: metrics::Counter,
    duration: metrics::Histogram,
}

impl EndpointMetrics {
    fn new(service: &'static str, endpoint: &'static str) -> Self {
        let requests = |outcome: &'static str| {
            metrics::counter!(
                "carehub_rpc_requests_total",
                "component" => service,
                "endpoint" => endpoint,
                "outcome" => outcome
            )
        };
        Self {
            service,
            endpoint,
            ok: requests("ok"),
            rejected: requests("rejected"),
            failed: requests("error"),
            duration: metrics::histogram!(
                "carehub_rpc_duration_seconds",
                "component" => service,
                "endpoint" => endpoint
            ),
        }
    }

    fn record(&self, result: Result<(), ErrorCode>, elapsed: Duration) {
        self.duration.record(elapsed.as_secs_f64());
        match result {
            Ok(()) => self.ok.increment(1),
            Err(code) => {
                if code.http_status() >= 500 {
                    self.failed.increment(1);
                } else {
                    self.rejected.increment(1);
                }
                metrics::counter!(
                    "carehub_rpc_errors_total",
                    "component" => self.service,
                    "endpoint" => self.endpoint,
                    "code" => code.as_str()
                )
                .increment(1);
            }
        }
    }
}

async fn handle_one<R, S, F, Fut>(
    service: &'static str,
    metrics: &EndpointMetrics,
    request: async_nats::service::Request,
    state: S,
    handler: F,
) where
    R: Rpc,
    F: Fn(S, CallContext, R) -> Fut,
    Fut: Future<Output = Result<R::Reply, WireError>>,
{
    let ctx = CallContext::from_headers(request.message.headers.as_ref());
    let span = tracing::info_span!(
        "rpc",
        service,
        endpoint = R::ENDPOINT,
        request_id = %ctx.request_id,
        caller_id = ctx.principal.as_ref().map(|p| p.user_id.as_str()).unwrap_or(""),
    );
    async move {
        let started = std::time::Instant::now();
        let result = match serde_json::from_slice::<R>(&request.message.payload) {
            Ok(req) => handler(state, ctx, req).await,
            Err(e) => Err(WireError::new(
                ErrorCode::BadRequest,
                format!("invalid request body: {e}"),
            )),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) if e.code.http_status() >= 500 => "error",
            Err(_) => "rejected",
        };
        let elapsed = started.elapsed();
        metrics.record(result.as_ref().map(|_| ()).map_err(|e| e.code), elapsed);
        let sent = match result
            .and_then(|reply| serde_json::to_vec(&reply).map_err(|_| WireError::internal()))
        {
            Ok(body) => request.respond(Ok(body.into())).await,
            Err(err) => {
                let mut h = async_nats::HeaderMap::new();
                h.insert(headers::ERROR_CODE, err.code.as_str());
                if let Some(secs) = err.retry_after_secs {
                    h.insert(headers::RETRY_AFTER, secs.to_string().as_str());
                }
                let status = async_nats::service::error::Error {
                    status: err.message.replace(['\r', '\n'], " "),
                    code: usize::from(err.code.http_status()),
                };
                request.respond_with_headers(Err(status), h).await
            }
        };
        tracing::debug!(outcome, elapsed_us = elapsed.as_micros() as u64, "handled");
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not send reply");
        }
    }
    .instrument(span)
    .await;
}
