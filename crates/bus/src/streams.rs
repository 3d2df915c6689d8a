//! Makes sure carehub's JetStream streams exist (their names and subjects are the contract's,
//! [`carehub_nats::streams`]). Every service calls [`ensure`] at start; creating is idempotent.
//!
//! Each stream keeps a duplicate window (two minutes unless configured), so an event
//! republished with the same `Nats-Msg-Id` within it (an outbox relay retrying after a crash,
//! `carehub ops replay`) is stored once.

use async_nats::jetstream::{self, stream};
use carehub_nats::streams::StreamSpec;
use std::time::Duration;

/// How often creating a stream is retried before a service gives up starting.
const CREATE_ATTEMPTS: u32 = 8;

/// How long a duplicate `Nats-Msg-Id` is recognised unless configured.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How carehub's streams are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// Copies of each stream: 1 on one server, 3 in a cluster.
    pub replicas: usize,
    /// How long a repeated `Nats-Msg-Id` is recognised and stored once.
    pub duplicate_window: Duration,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            replicas: 1,
            duplicate_window: DUPLICATE_WINDOW,
        }
    }
}

/// Creates the streams that do not exist yet as `options` says, sets the duplicate window of
/// those that exist with another one, and returns the bus's JetStream context they were made
/// with.
///
/// # Errors
/// When JetStream is unavailable or a stream exists with conflicting subjects.
pub async fn ensure(
    bus: &crate::Bus,
    specs: &[StreamSpec],
    options: &StreamOptions,
) -> Result<jetstream::Context, crate::BusError> {
    let js = jetstream::new(bus.client().clone());
    for spec in specs {
        let config = stream::Config {
            name: spec.name.into(),
            subjects: vec![spec.subjects.into()],
            description: Some(spec.description.into()),
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            num_replicas: options.replicas.max(1),
            duplicate_window: options.duplicate_window,
            max_age: Duration::from_secs(365 * 86_400),
            ..Default::default()
        };
        // Services starting together race to create the same stream, and a cluster may still be
        // electing leaders: a few retries let the first creator win and the rest find it.
        let mut attempt = 0u32;
        loop {
            match js.get_or_create_stream(config.clone()).await {
                Ok(existing) => {
                    let current = existing.cached_info().config.clone();
                    if current.duplicate_window != options.duplicate_window {
                        // Only the window changes: replicas and limits stay as the operator left them.
                        let updated = stream::Config {
                            duplicate_window: options.duplicate_window,
                            ..current
                        };
                        // Only the stream's writer may update it (nats/conf/permissions.conf);
                        // the others keep going with the window as it is.
                        match js.update_stream(updated).await {
                            Ok(_) => tracing::info!(
                                stream = spec.name,
                                duplicate_window_secs = options.duplicate_window.as_secs_f64(),
                                "stream duplicate window set"
                            ),
                            Err(e) => tracing::debug!(
                                stream = spec.name,
                                error = %e,
                                "the stream's duplicate window is left to its writer"
                            ),
                        }
                    }
                    break;
                }
                Err(e) if attempt < CREATE_ATTEMPTS => {
                    attempt += 1;
                    tracing::debug!(stream = spec.name, error = %e, "stream not ready; retrying");
                    tokio::time::sleep(Duration::from_millis(250) * attempt).await;
                }
                Err(e) => {
                    return Err(crate::BusError::Transport {
                        subject: format!("$JS.API.STREAM.CREATE.{}", spec.name),
                        message: e.to_string(),
                    });
                }
            }
        }
    }
    Ok(js)
}
