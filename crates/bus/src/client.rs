//! Connecting to NATS and making typed calls.
//!
//! [`Bus::connect`] sets the options every carehub component wants (a name, endless reconnects
//! with backoff, an optional per-component user and inbox prefix) and exposes connection changes
//! as [`ConnectionEvent`]s, so callers can drop state they may have missed events for.
//!
//! Metrics (labelled with the component, the connection name without its `carehub-` prefix):
//! `carehub_nats_connected`, `carehub_nats_reconnects_total`, `carehub_nats_disconnects_total`,
//! `carehub_nats_errors_total{kind}` and `carehub_nats_request_errors_total{subject,kind}`.

use crate::BusError;
use crate::ContextHeaders as _;
use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use async_nats::{Client, ConnectOptions, RequestErrorKind};
use carehub_nats::rpc::headers;
use carehub_nats::{CallContext, Rpc};
use carehub_nats::{ErrorCode, WireError};
use metrics::SharedString;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::broadcast;

/// How to reach NATS.
#[derive(Clone)]
pub struct BusConfig {
    /// One or more comma-separated server URLs.
    pub url: String,
    /// Connection name shown by the server (`nats server report connections`).
    pub name: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Inbox prefix, so deployment permissions can keep each component's replies private.
    pub inbox_prefix: Option<String>,
}

impl std::fmt::Debug for BusConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusConfig")
            .field("url", &self.url)
            .field("name", &self.name)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("inbox_prefix", &self.inbox_prefix)
            .finish()
    }
}

impl BusConfig {
    pub fn new(url: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            name: name.into(),
            user: None,
            password: None,
            inbox_prefix: None,
        }
    }
}

/// A change of the connection to NATS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEvent {
    Connected,
    Disconnected,
}

/// A NATS connection with typed request helpers. Cheap to clone: one reference count, since
/// handlers clone it for every request (an `async_nats::Client` clone alone is several
/// reference counts, a channel sender and an allocation).
#[derive(Clone, Debug)]
pub struct Bus(Arc<Connection>);

#[derive(Debug)]
struct Connection {
    client: Client,
    events: broadcast::Sender<ConnectionEvent>,
    /// The `component` label of this connection's metrics.
    component: SharedString,
}

/// Counts a connection event in the metrics.
fn record_event(component: &SharedString, event: &async_nats::Event, first: &AtomicBool) {
    let c = component.clone();
    match event {
        async_nats::Event::Connected => {
            metrics::gauge!("carehub_nats_connected", "component" => c.clone()).set(1.0);
            if !first.swap(false, Ordering::Relaxed) {
                metrics::counter!("carehub_nats_reconnects_total", "component" => c).increment(1);
            }
        }
        async_nats::Event::Disconnected => {
            metrics::gauge!("carehub_nats_connected", "component" => c.clone()).set(0.0);
            metrics::counter!("carehub_nats_disconnects_total", "component" => c).increment(1);
        }
        other => {
            let kind = match other {
                async_nats::Event::SlowConsumer(_) => "slow_consumer",
                async_nats::Event::ServerError(_) => "server_error",
                async_nats::Event::ClientError(_) => "client_error",
                async_nats::Event::LameDuckMode => "lame_duck_mode",
                _ => return,
            };
            metrics::counter!("carehub_nats_errors_total", "component" => c, "kind" => kind)
                .increment(1);
        }
    }
}

impl Bus {
    /// Connects, retrying with backoff until `deadline` passes.
    ///
    /// # Errors
    /// When no server answered before the deadline or the URL is invalid.
    pub async fn connect(cfg: &BusConfig, deadline: Duration) -> Result<Self, BusError> {
        let (events, _) = broadcast::channel(64);
        let tx = events.clone();
        let component = SharedString::from(
            cfg.name
                .strip_prefix("carehub-")
                .unwrap_or(&cfg.name)
                .to_owned(),
        );
        let label = component.clone();
        let first = Arc::new(AtomicBool::new(true));
        let mut opts = ConnectOptions::new()
            .name(&cfg.name)
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .ping_interval(Duration::from_secs(10))
            .reconnect_delay_callback(|attempt| {
                // Fast first retries so a restarted server is picked up quickly, capped at 2 s.
                Duration::from_millis((50u64 << attempt.min(6)).min(2_000))
            })
            .event_callback(move |event| {
                let tx = tx.clone();
                record_event(&label, &event, &first);
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            tracing::info!("nats connected");
                            let _ = tx.send(ConnectionEvent::Connected);
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!("nats disconnected");
                            let _ = tx.send(ConnectionEvent::Disconnected);
                        }
                        // A permissions violation: the deployment's NATS permissions and
                        // this build disagree about what the component may do.
                        async_nats::Event::ServerError(e) => {
                            tracing::error!(error = %e, "nats server refused an operation");
                        }
                        other => tracing::debug!(event = %other, "nats event"),
                    }
                }
            });
        if let (Some(user), Some(password)) = (&cfg.user, &cfg.password) {
            opts = opts.user_and_password(user.clone(), password.clone());
        }
        if let Some(prefix) = &cfg.inbox_prefix {
            opts = opts.custom_inbox_prefix(prefix);
        }
        let servers: Vec<&str> = cfg.url.split(',').map(str::trim).collect();
        let transport = |message: String| BusError::Transport {
            subject: String::new(),
            message,
        };
        let addrs: Vec<async_nats::ServerAddr> = servers
            .iter()
            .map(|s| {
                s.parse::<async_nats::ServerAddr>()
                    .map_err(|e| transport(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let client = tokio::time::timeout(deadline, async move {
            let mut attempt = 0u32;
            loop {
                match opts.clone().connect(addrs.clone()).await {
                    Ok(c) => return Ok(c),
                    Err(e) if attempt >= 1_000 => return Err(e),
                    Err(e) => {
                        tracing::debug!(error = %e, "nats not reachable yet");
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
        .await
        .map_err(|_| transport(format!("no NATS server answered at {}", cfg.url)))?
        .map_err(|e| transport(e.to_string()))?;
        Ok(Self(Arc::new(Connection {
            client,
            events,
            component,
        })))
    }

    /// The raw client, for subscriptions and the micro service API.
    pub fn client(&self) -> &Client {
        &self.0.client
    }

    /// Connection changes from now on.
    pub fn connection_events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.0.events.subscribe()
    }

    /// Whether the connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.0.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Sends a typed request and waits up to `R::TIMEOUT` for its typed reply.
    ///
    /// # Errors
    /// [`BusError::NoResponders`] when the service is not running, [`BusError::TimedOut`] when it
    /// did not answer in time, [`BusError::Remote`] when it answered with an error.
    pub async fn request<R: Rpc>(&self, ctx: &CallContext, req: &R) -> Result<R::Reply, BusError> {
        self.request_with_timeout(ctx, req, R::TIMEOUT).await
    }

    /// As [`Bus::request`], with an explicit timeout.
    ///
    /// # Errors
    /// As [`Bus::request`].
    pub async fn request_with_timeout<R: Rpc>(
        &self,
        ctx: &CallContext,
        req: &R,
        timeout: Duration,
    ) -> Result<R::Reply, BusError> {
        let msg = self.exchange(ctx, req, timeout).await?;
        decode_reply::<R::Reply>(R::SUBJECT, &msg)
    }

    /// As [`Bus::request`], but a successful reply is returned as the JSON the service sent,
    /// undecoded: for a caller that passes it on as it is (the gateway answering HTTP with
    /// the reply's body), which then needs no decoding and re-encoding of every field.
    ///
    /// # Errors
    /// As [`Bus::request`]; an error reply is decoded as there.
    pub async fn request_json<R: Rpc>(
        &self,
        ctx: &CallContext,
        req: &R,
    ) -> Result<bytes::Bytes, BusError> {
        let msg = self.exchange(ctx, req, R::TIMEOUT).await?;
        match remote_error(R::SUBJECT, &msg) {
            Some(e) => Err(e),
            None => Ok(msg.payload),
        }
    }

    /// Sends `req` and waits up to `timeout` for the reply message, whatever it says.
    async fn exchange<R: Rpc>(
        &self,
        ctx: &CallContext,
        req: &R,
        timeout: Duration,
    ) -> Result<async_nats::Message, BusError> {
        let subject = R::SUBJECT;
        let payload = serde_json::to_vec(req).map_err(|e| BusError::Decode {
            subject: subject.into(),
            message: e.to_string(),
        })?;
        let request = async_nats::Request::new()
            .payload(payload.into())
            .headers(ctx.to_headers())
            .timeout(Some(timeout));
        let msg = self
            .0
            .client
            .send_request(subject, request)
            .await
            .map_err(|e| {
                let (kind, err) = match e.kind() {
                    RequestErrorKind::NoResponders => (
                        "no_responders",
                        BusError::NoResponders {
                            subject: subject.into(),
                        },
                    ),
                    RequestErrorKind::TimedOut => (
                        "timed_out",
                        BusError::TimedOut {
                            subject: subject.into(),
                        },
                    ),
                    _ => (
                        "transport",
                        BusError::Transport {
                            subject: subject.into(),
                            message: e.to_string(),
                        },
                    ),
                };
                metrics::counter!(
                    "carehub_nats_request_errors_total",
                    "component" => self.0.component.clone(),
                    "subject" => subject,
                    "kind" => kind
                )
                .increment(1);
                err
            })?;
        Ok(msg)
    }

    /// Publishes an event on core NATS.
    ///
    /// # Errors
    /// When the event cannot be encoded or the client's buffer is closed.
    pub async fn publish<T: Serialize>(&self, subject: &str, event: &T) -> Result<(), BusError> {
        let payload = serde_json::to_vec(event).map_err(|e| BusError::Decode {
            subject: subject.into(),
            message: e.to_string(),
        })?;
        self.0
            .client
            .publish(subject.to_owned(), payload.into())
            .await
            .map_err(|e| BusError::Transport {
                subject: subject.into(),
                message: e.to_string(),
            })
    }

    /// Flushes what is buffered and closes the connection after in-flight messages are handled.
    pub async fn drain(&self) {
        if let Err(e) = self.0.client.drain().await {
            tracing::debug!(error = %e, "nats drain");
        }
    }
}

/// An error reply carries the micro protocol's error headers plus our code; a success reply
/// carries none.
fn remote_error(subject: &str, msg: &async_nats::Message) -> Option<BusError> {
    let h = msg
        .headers
        .as_ref()
        .filter(|h| h.get(NATS_SERVICE_ERROR_CODE).is_some())?;
    let code = h
        .get(headers::ERROR_CODE)
        .map_or(ErrorCode::Internal, |v| ErrorCode::parse(v.as_str()));
    let message = h
        .get(NATS_SERVICE_ERROR)
        .map_or_else(|| code.to_string(), |v| v.to_string());
    let retry_after_secs = h
        .get(headers::RETRY_AFTER)
        .and_then(|v| v.as_str().parse().ok());
    // An error reply's body, when not empty, is its details; ones this build cannot read
    // are dropped (the code and message still say what went wrong).
    let details = (!msg.payload.is_empty())
        .then(|| serde_json::from_slice(&msg.payload))
        .and_then(|d| {
            d.inspect_err(|e| tracing::debug!(subject, error = %e, "unreadable error details"))
                .ok()
        });
    Some(BusError::Remote(WireError {
        code,
        message,
        retry_after_secs,
        details,
    }))
}

/// Decodes a reply, or the error it carries.
fn decode_reply<T: serde::de::DeserializeOwned>(
    subject: &str,
    msg: &async_nats::Message,
) -> Result<T, BusError> {
    if let Some(e) = remote_error(subject, msg) {
        return Err(e);
    }
    serde_json::from_slice(&msg.payload).map_err(|e| BusError::Decode {
        subject: subject.into(),
        message: e.to_string(),
    })
}
