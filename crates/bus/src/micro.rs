//! Registers a carehub service with the NATS micro services protocol and serves typed endpoints.
//!
//! Every service appears in `nats micro ls`, answers `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS`
//! (all three also per name and per instance id), and has one endpoint per [`Rpc`] type in the
//! protocol's default queue group, so several instances share the load. Handlers get the decoded
//! request and its [`CallContext`]; errors go back as the micro protocol's error headers plus our
//! stable code. The wire types are async-nats' own, so the replies are what the `nats` CLI reads.
//!
//! The endpoints are plain queue subscriptions rather than async-nats' service endpoints, because
//! stopping one has to hand its traffic over without dropping a request (see
//! [`MicroService::shutdown`]); the client's endpoint type can only unsubscribe outright.
//!
//! Every endpoint records `carehub_rpc_requests_total` (by outcome), `carehub_rpc_errors_total`
//! (by error code) and `carehub_rpc_duration_seconds` under its service's name as `component`
//! (see `docs/METRICS.md`); the handling span carries the caller's `request_id`.

use crate::Bus;
use crate::BusError;
use crate::ContextHeaders as _;
use crate::context::with_request_id;
use async_nats::service::{
    self as protocol, NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE, endpoint,
};
use async_nats::{Client, HeaderMap, Message, Subscriber};
use carehub_nats::rpc::headers;
use carehub_nats::{CallContext, Rpc};
use carehub_nats::{ErrorCode, WireError};
use futures::{FutureExt, StreamExt};
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// The queue group every endpoint joins: the micro protocol's default.
pub(crate) const QUEUE_GROUP: &str = "q";

/// The fewest more requests a stopping endpoint agrees to take after it asks NATS to stop
/// routing to it. A request is lost only when more than the allowance are already on their way
/// to this instance as NATS processes the unsubscribe, so the allowance grows with the traffic:
/// it is at least everything the endpoint took in the last [`RATE_WINDOW`] or two.
const HANDOFF_REQUESTS: u64 = 4;

/// The span over which an endpoint counts its recent requests (see [`HANDOFF_REQUESTS`]).
const RATE_WINDOW: Duration = Duration::from_millis(100);

/// The longest a stopping endpoint waits for those requests before unsubscribing outright (a
/// quiet endpoint may never see them); a quarter of the shutdown grace when that is shorter.
const HANDOFF_LINGER: Duration = Duration::from_secs(2);

/// Starts a micro service ([`MicroService::start`]) and serves one endpoint per request type,
/// each with the method of `$svc` that handles it, inside an async function returning a
/// `Result` that a [`crate::BusError`] converts into; evaluates to the [`MicroService`]:
/// `let micro = serve!(&bus, SPEC, max_in_flight, svc, Login => login, Me => me);`. Every
/// method takes `(&self, &CallContext, Request)`.
#[macro_export]
macro_rules! serve {
    ($bus:expr, $spec:expr, $max_in_flight:expr, $svc:expr, $($req:ty => $method:ident),+ $(,)?) => {{
        let micro = $crate::MicroService::start($bus, $spec, $max_in_flight).await?;
        $(
            micro
                .serve($svc.clone(), |s, c: ::carehub_nats::CallContext, r: $req| async move { s.$method(&c, r).await })
                .await?;
        )+
        micro
    }};
}

/// The micro protocol's subject for `verb` (`PING`, `INFO`, `STATS`) to every service, or to
/// one service's instances: `$SRV.<verb>[.<service>]`.
pub fn verb_subject(verb: &str, service: Option<&str>) -> String {
    match service {
        Some(name) => format!("$SRV.{verb}.{name}"),
        None => format!("$SRV.{verb}"),
    }
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
    client: Client,
    identity: Arc<Identity>,
    endpoints: Arc<Mutex<Vec<Arc<EndpointState>>>>,
    verbs: CancellationToken,
    verbs_done: TaskTracker,
    tracker: TaskTracker,
    stop: CancellationToken,
    linger: Arc<OnceLock<Duration>>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for MicroService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MicroService")
            .field("spec", &self.identity.spec)
            .field("id", &self.identity.id)
            .finish_non_exhaustive()
    }
}

/// Who this instance is, as the `$SRV` replies say it.
struct Identity {
    spec: ServiceSpec,
    id: String,
    started: async_nats::datetime::DateTime,
}

impl MicroService {
    /// Registers the service: from now on it answers `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS`.
    /// `max_in_flight` bounds concurrently handled requests; further requests wait in the
    /// subscription's buffer (and eventually time out at the caller).
    ///
    /// # Errors
    /// When the service cannot subscribe to its verb subjects.
    pub async fn start(
        bus: &Bus,
        spec: ServiceSpec,
        max_in_flight: usize,
    ) -> Result<Self, BusError> {
        let client = bus.client().clone();
        let identity = Arc::new(Identity {
            spec,
            id: uuid::Uuid::new_v4().simple().to_string(),
            started: async_nats::datetime::now(),
        });
        let mut subs = Vec::new();
        for verb in Verb::ALL {
            for subject in verb.subjects(spec.name, &identity.id) {
                let sub =
                    client
                        .subscribe(subject.clone())
                        .await
                        .map_err(|e| BusError::Transport {
                            subject,
                            message: e.to_string(),
                        })?;
                subs.push(sub.map(move |m| (verb, m)).boxed());
            }
        }
        let service = Self {
            client,
            identity,
            endpoints: Arc::default(),
            verbs: CancellationToken::new(),
            verbs_done: TaskTracker::new(),
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
            linger: Arc::default(),
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
        };
        service.verbs_done.spawn(answer_verbs(
            service.client.clone(),
            service.identity.clone(),
            service.endpoints.clone(),
            futures::stream::select_all(subs),
            service.verbs.clone(),
        ));
        Ok(service)
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
        let connects = self.client.statistics().connects.load(Ordering::Relaxed);
        let requests = self
            .client
            .queue_subscribe(R::SUBJECT, QUEUE_GROUP.to_owned())
            .await
            .map_err(|e| BusError::Transport {
                subject: R::SUBJECT.into(),
                message: e.to_string(),
            })?;
        let endpoint = Arc::new(EndpointState::new(R::ENDPOINT, R::SUBJECT));
        self.endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(endpoint.clone());
        let dispatch = Dispatch::<R, S, F> {
            service: self.identity.spec.name,
            client: Arc::new(self.client.clone()),
            endpoint,
            metrics: Arc::new(EndpointMetrics::new(self.identity.spec.name, R::ENDPOINT)),
            permits: self.permits.clone(),
            tracker: self.tracker.clone(),
            state,
            handler,
            request: PhantomData,
        };
        self.tracker.spawn(run_endpoint(
            requests,
            dispatch,
            connects,
            self.stop.clone(),
            self.linger.clone(),
        ));
        Ok(())
    }

    /// Stops taking requests, lets in-flight ones finish (up to `deadline`), then deregisters.
    ///
    /// Each endpoint hands its traffic over to the other instances before it lets go: it asks
    /// NATS (an `UNSUB` with a message count) to route it a few more requests (as many as it
    /// took lately, at least [`HANDOFF_REQUESTS`]) and then drop the subscription, answers
    /// those, and ends exactly when the client has received that count. So a request NATS
    /// routed here while the unsubscribe was on its way is still answered rather than lost. A
    /// quiet endpoint that does not see those requests within a short wait (a quarter of
    /// `deadline`, at most [`HANDOFF_LINGER`]) unsubscribes outright: next to nothing is on its
    /// way to it. The instance keeps answering `$SRV` requests until its endpoints are gone.
    pub async fn shutdown(self, deadline: Duration) {
        let _ = self.linger.set(HANDOFF_LINGER.min(deadline / 4));
        self.stop.cancel();
        self.tracker.close();
        if tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                service = self.identity.spec.name,
                "shutdown deadline passed with requests in flight"
            );
        }
        self.verbs.cancel();
        self.verbs_done.close();
        self.verbs_done.wait().await;
        // Replies are queued in the client; make sure the server has them before the
        // connection can go away with this instance.
        match tokio::time::timeout(deadline, self.client.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(
                error = %e,
                service = self.identity.spec.name,
                "could not flush the last replies"
            ),
            Err(_) => tracing::warn!(
                service = self.identity.spec.name,
                "flushing the last replies timed out"
            ),
        }
    }
}

/// Serves one endpoint's subscription until shutdown, then hands its traffic over and ends.
async fn run_endpoint<R, S, F, Fut>(
    mut requests: Subscriber,
    dispatch: Dispatch<R, S, F>,
    connects: u64,
    stop: CancellationToken,
    linger: Arc<OnceLock<Duration>>,
) where
    R: Rpc,
    S: Clone + Send + Sync + 'static,
    F: Fn(S, CallContext, R) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R::Reply, WireError>> + Send + 'static,
{
    // Every message the client has handed over, counted the way both the client and the
    // server count deliveries on this subscription.
    let mut taken: u64 = 0;
    let mut recent = RecentCount::new();
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            next = requests.next() => match next {
                Some(m) => {
                    taken += 1;
                    recent.add();
                    dispatch.dispatch(m).await;
                }
                None => return,
            },
        }
    }
    // NATS counts deliveries from the latest (re)subscription; after a reconnect the counts no
    // longer line up, so such an endpoint unsubscribes outright.
    let same_connection = dispatch
        .client
        .statistics()
        .connects
        .load(Ordering::Relaxed)
        == connects;
    let wait = linger.get().copied().unwrap_or(HANDOFF_LINGER);
    if same_connection && hand_over(&mut requests, &dispatch, taken, recent, wait).await {
        return;
    }
    if let Err(e) = requests.unsubscribe().await {
        tracing::debug!(error = %e, endpoint = R::ENDPOINT, "endpoint unsubscribe");
    }
    while let Some(m) = requests.next().await {
        dispatch.dispatch(m).await;
    }
}

/// Asks NATS to route `requests` only a counted few more and serves them; `true` once the
/// subscription has ended that way, `false` when it is still open after `wait` (a quiet
/// endpoint) or the count could not be sent. `taken` and `recent` count what was received.
async fn hand_over<R, S, F, Fut>(
    requests: &mut Subscriber,
    dispatch: &Dispatch<R, S, F>,
    mut taken: u64,
    mut recent: RecentCount,
    wait: Duration,
) -> bool
where
    R: Rpc,
    S: Clone + Send + Sync + 'static,
    F: Fn(S, CallContext, R) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R::Reply, WireError>> + Send + 'static,
{
    // Take what the client already holds, so `taken` is the client's count bar what is in
    // flight this very moment.
    while let Some(next) = requests.next().now_or_never() {
        let Some(m) = next else { return true };
        taken += 1;
        recent.add();
        dispatch.dispatch(m).await;
    }
    let count = taken + recent.count().max(HANDOFF_REQUESTS);
    if requests.unsubscribe_after(count).await.is_err() {
        return false;
    }
    let quiet = tokio::time::sleep(wait);
    tokio::pin!(quiet);
    loop {
        tokio::select! {
            () = &mut quiet => return false,
            next = requests.next() => match next {
                Some(m) => dispatch.dispatch(m).await,
                // The count was reached: NATS routes nothing more here.
                None => return true,
            },
        }
    }
}

/// Requests counted over the current and the previous [`RATE_WINDOW`].
struct RecentCount {
    window_start: Instant,
    current: u64,
    previous: u64,
}

impl RecentCount {
    fn new() -> Self {
        Self {
            window_start: Instant::now(),
            current: 0,
            previous: 0,
        }
    }

    fn roll(&mut self) {
        let age = self.window_start.elapsed();
        if age >= RATE_WINDOW * 2 {
            (self.previous, self.current) = (0, 0);
            self.window_start = Instant::now();
        } else if age >= RATE_WINDOW {
            (self.previous, self.current) = (self.current, 0);
            self.window_start += RATE_WINDOW;
        }
    }

    fn add(&mut self) {
        self.roll();
        self.current += 1;
    }

    fn count(&mut self) -> u64 {
        self.roll();
        self.current + self.previous
    }
}

/// Everything one endpoint needs to handle a request.
struct Dispatch<R, S, F> {
    service: &'static str,
    /// Shared: a `Client` clone costs an allocation, and each request's task needs one.
    client: Arc<Client>,
    endpoint: Arc<EndpointState>,
    metrics: Arc<EndpointMetrics>,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    state: S,
    handler: F,
    request: PhantomData<fn() -> R>,
}

impl<R, S, F, Fut> Dispatch<R, S, F>
where
    R: Rpc,
    S: Clone + Send + Sync + 'static,
    F: Fn(S, CallContext, R) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R::Reply, WireError>> + Send + 'static,
{
    /// Handles `message` on its own task once a permit is free.
    async fn dispatch(&self, message: Message) {
        let issued = Instant::now();
        let Some(reply) = message.reply.clone() else {
            tracing::debug!(
                service = self.service,
                endpoint = R::ENDPOINT,
                "request without a reply subject ignored"
            );
            return;
        };
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return;
        };
        let service = self.service;
        let client = self.client.clone();
        let endpoint = self.endpoint.clone();
        let metrics = self.metrics.clone();
        let state = self.state.clone();
        let handler = self.handler.clone();
        self.tracker.spawn(async move {
            let _permit = permit;
            let answer =
                handle_one::<R, S, F, Fut>(service, &metrics, &message, state, handler).await;
            let (sent, failure) = match answer {
                Ok(body) => (client.publish(reply, body.into()).await, None),
                Err(err) => {
                    let failure = protocol::error::Error {
                        status: err.message.replace(['\r', '\n'], " "),
                        code: usize::from(err.code.http_status()),
                    };
                    let mut h = HeaderMap::new();
                    h.insert(NATS_SERVICE_ERROR, failure.status.as_str());
                    h.insert(NATS_SERVICE_ERROR_CODE, failure.code.to_string().as_str());
                    h.insert(headers::ERROR_CODE, err.code.as_str());
                    if let Some(secs) = err.retry_after_secs {
                        h.insert(headers::RETRY_AFTER, secs.to_string().as_str());
                    }
                    // Details, when an error has them, are the reply's body (empty otherwise).
                    let body = err
                        .details
                        .as_ref()
                        .and_then(|d| serde_json::to_vec(d).ok())
                        .unwrap_or_default();
                    let sent = client.publish_with_headers(reply, h, body.into()).await;
                    (sent, Some(failure))
                }
            };
            if let Err(e) = sent {
                tracing::warn!(error = %e, service, endpoint = R::ENDPOINT, "could not send reply");
            }
            endpoint.record(issued.elapsed(), failure);
        });
    }
}

/// One endpoint as `$SRV.INFO` and `$SRV.STATS` describe it.
struct EndpointState {
    name: &'static str,
    subject: &'static str,
    stats: Mutex<EndpointStats>,
}

#[derive(Default)]
struct EndpointStats {
    requests: usize,
    errors: usize,
    processing: Duration,
    last_error: Option<protocol::error::Error>,
}

impl EndpointState {
    fn new(name: &'static str, subject: &'static str) -> Self {
        Self {
            name,
            subject,
            stats: Mutex::default(),
        }
    }

    /// Counts one answered request: `elapsed` from its arrival to the reply, `failure` when the
    /// reply was an error.
    fn record(&self, elapsed: Duration, failure: Option<protocol::error::Error>) {
        let mut s = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        s.requests += 1;
        s.processing += elapsed;
        if let Some(f) = failure {
            s.errors += 1;
            s.last_error = Some(f);
        }
    }

    fn info(&self) -> endpoint::Info {
        endpoint::Info {
            name: self.name.to_owned(),
            subject: self.subject.to_owned(),
            queue_group: QUEUE_GROUP.to_owned(),
            metadata: HashMap::new(),
        }
    }

    fn stats(&self) -> endpoint::Stats {
        let s = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        let average = u32::try_from(s.requests)
            .ok()
            .filter(|n| *n > 0)
            .map_or(Duration::ZERO, |n| s.processing / n);
        endpoint::Stats {
            name: self.name.to_owned(),
            subject: self.subject.to_owned(),
            requests: s.requests,
            errors: s.errors,
            processing_time: s.processing,
            average_processing_time: average,
            last_error: s.last_error.clone(),
            data: None,
            queue_group: QUEUE_GROUP.to_owned(),
        }
    }
}

/// The micro protocol's discovery verbs.
#[derive(Debug, Clone, Copy)]
enum Verb {
    Ping,
    Info,
    Stats,
}

impl Verb {
    const ALL: [Self; 3] = [Self::Ping, Self::Info, Self::Stats];

    /// All services, this service's instances, this instance.
    fn subjects(self, name: &str, id: &str) -> [String; 3] {
        let verb = match self {
            Self::Ping => "PING",
            Self::Info => "INFO",
            Self::Stats => "STATS",
        };
        [
            verb_subject(verb, None),
            verb_subject(verb, Some(name)),
            format!("{}.{id}", verb_subject(verb, Some(name))),
        ]
    }

    fn answer(
        self,
        who: &Identity,
        endpoints: &[Arc<EndpointState>],
    ) -> serde_json::Result<Vec<u8>> {
        let spec = who.spec;
        match self {
            Self::Ping => serde_json::to_vec(&protocol::PingResponse {
                kind: "io.nats.micro.v1.ping_response".to_owned(),
                name: spec.name.to_owned(),
                id: who.id.clone(),
                version: spec.version.to_owned(),
                metadata: HashMap::new(),
            }),
            Self::Info => serde_json::to_vec(&protocol::Info {
                kind: "io.nats.micro.v1.info_response".to_owned(),
                name: spec.name.to_owned(),
                id: who.id.clone(),
                description: spec.description.to_owned(),
                version: spec.version.to_owned(),
                metadata: HashMap::new(),
                endpoints: endpoints.iter().map(|e| e.info()).collect(),
            }),
            Self::Stats => serde_json::to_vec(&protocol::Stats {
                kind: "io.nats.micro.v1.stats_response".to_owned(),
                name: spec.name.to_owned(),
                id: who.id.clone(),
                version: spec.version.to_owned(),
                started: who.started,
                endpoints: endpoints.iter().map(|e| e.stats()).collect(),
            }),
        }
    }
}

/// Answers `$SRV` requests until `stop`.
async fn answer_verbs(
    client: Client,
    who: Arc<Identity>,
    endpoints: Arc<Mutex<Vec<Arc<EndpointState>>>>,
    mut requests: futures::stream::SelectAll<futures::stream::BoxStream<'static, (Verb, Message)>>,
    stop: CancellationToken,
) {
    loop {
        let (verb, message) = tokio::select! {
            () = stop.cancelled() => break,
            next = requests.next() => match next {
                Some(r) => r,
                None => break,
            },
        };
        let Some(reply) = message.reply else { continue };
        let listed = endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match verb.answer(&who, &listed) {
            Ok(body) => {
                if let Err(e) = client.publish(reply, body.into()).await {
                    tracing::debug!(error = %e, ?verb, "could not answer a $SRV request");
                }
            }
            Err(e) => tracing::warn!(error = %e, ?verb, "could not encode a $SRV answer"),
        }
    }
}

/// The largest reply buffer allocated up front; bigger replies grow theirs as they are written.
const REPLY_HINT_MAX: usize = 64 * 1024;

/// An endpoint's metric handles, registered once so a request records without a lookup.
struct EndpointMetrics {
    service: &'static str,
    endpoint: &'static str,
    ok: metrics::Counter,
    rejected: metrics::Counter,
    failed: metrics::Counter,
    duration: metrics::Histogram,
    /// The size of the last reply encoded, so the next one's buffer is allocated once instead
    /// of doubling its way up (a week of free slots is about 12 KB).
    reply_bytes: AtomicUsize,
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
            reply_bytes: AtomicUsize::new(0),
        }
    }

    /// Encodes a reply into a buffer sized after the last one (at most [`REPLY_HINT_MAX`]).
    fn encode<T: serde::Serialize>(&self, reply: &T) -> serde_json::Result<Vec<u8>> {
        let last = self.reply_bytes.load(Ordering::Relaxed);
        let mut body = Vec::with_capacity((last + last / 8 + 64).min(REPLY_HINT_MAX));
        serde_json::to_writer(&mut body, reply)?;
        self.reply_bytes.store(body.len(), Ordering::Relaxed);
        Ok(body)
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

/// Decodes and handles one request; the encoded reply, or the error to send back.
async fn handle_one<R, S, F, Fut>(
    service: &'static str,
    metrics: &EndpointMetrics,
    message: &Message,
    state: S,
    handler: F,
) -> Result<Vec<u8>, WireError>
where
    R: Rpc,
    F: Fn(S, CallContext, R) -> Fut,
    Fut: Future<Output = Result<R::Reply, WireError>>,
{
    let ctx = CallContext::from_headers(message.headers.as_ref());
    let request_id = ctx.request_id.clone();
    let span = tracing::info_span!(
        "rpc",
        service,
        endpoint = R::ENDPOINT,
        request_id = %ctx.request_id,
        caller_id = ctx.principal.as_ref().map(|p| p.user_id.as_str()).unwrap_or(""),
    );
    async move {
        let started = Instant::now();
        let result = match serde_json::from_slice::<R>(&message.payload) {
            Ok(req) => with_request_id(Some(request_id), handler(state, ctx, req)).await,
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
        tracing::debug!(outcome, elapsed_us = elapsed.as_micros() as u64, "handled");
        result.and_then(|reply| metrics.encode(&reply).map_err(|_| WireError::internal()))
    }
    .instrument(span)
    .await
}
