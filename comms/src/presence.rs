//! Who is online, across nodes: a JetStream stream keeping the last message per subject
//! `carehub.presence.<user_id>` (a key-value store in all but name; the client's KV API does not
//! create buckets on nats-server 2.9), whose values name the node that last saw the user. Each
//! node rewrites the entries of its connected users every third of the TTL; the stream's
//! `max_age` (the TTL) drops the entries of a node that died without cleaning up. When a user's
//! last socket on a node closes, that node deletes the entry if it wrote it last (another node
//! still holding the user rewrites it at its next refresh).

use async_nats::jetstream::{self, stream};
use carehub_nats::comms::{PresenceEntry, subject};
use carehub_runtime::db::now_ms;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::registry::Registry;

/// The presence stream, as this node uses it.
#[derive(Clone)]
pub struct Presence {
    js: jetstream::Context,
    stream: stream::Stream,
    node: String,
    ttl: Duration,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence")
            .field("node", &self.node)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn key(user_id: &str) -> String {
    format!("{}.{user_id}", subject::PRESENCE_PREFIX)
}

impl Presence {
    /// Opens the stream, creating it with `ttl` as its `max_age` when it does not exist.
    ///
    /// # Errors
    /// When JetStream is unavailable.
    pub async fn open(
        js: &jetstream::Context,
        node: String,
        ttl: Duration,
        replicas: usize,
    ) -> anyhow::Result<Self> {
        let config = stream::Config {
            name: subject::PRESENCE_STREAM.into(),
            subjects: vec![format!("{}.*", subject::PRESENCE_PREFIX)],
            description: Some("carehub hub presence: user id -> node".into()),
            max_messages_per_subject: 1,
            max_age: ttl,
            storage: stream::StorageType::Memory,
            num_replicas: replicas.max(1),
            ..Default::default()
        };
        // Hub nodes starting together race to create it: the losers find it on a retry.
        let mut attempt = 0u32;
        let stream = loop {
            match js.get_or_create_stream(config.clone()).await {
                Ok(s) => break s,
                Err(e) if attempt < 8 => {
                    attempt += 1;
                    tracing::debug!(error = %e, "presence stream not ready; retrying");
                    tokio::time::sleep(Duration::from_millis(250) * attempt).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        Ok(Self {
            js: js.clone(),
            stream,
            node,
            ttl,
        })
    }

    /// Records `user_id` as online on this node.
    pub async fn online(&self, user_id: &str) {
        let entry = PresenceEntry {
            node: self.node.clone(),
            at: now_ms(),
        };
        let Ok(value) = serde_json::to_vec(&entry) else {
            return;
        };
        match self.js.publish(key(user_id), value.into()).await {
            Ok(ack) => {
                if let Err(e) = ack.await {
                    tracing::warn!(error = %e, "presence write not stored");
                }
            }
            Err(e) => tracing::warn!(error = %e, "presence write failed"),
        }
    }

    /// The live entry of `user_id` and its stream sequence, if any.
    async fn entry(&self, user_id: &str) -> Option<(PresenceEntry, u64)> {
        let m = self
            .stream
            .get_last_raw_message_by_subject(&key(user_id))
            .await
            .ok()?;
        let e: PresenceEntry = serde_json::from_slice(&m.payload).ok()?;
        let ttl = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        (now_ms() - e.at < ttl).then_some((e, m.sequence))
    }

    /// Removes `user_id` unless another node wrote the entry since.
    pub async fn offline(&self, user_id: &str) {
        if let Some((e, seq)) = self.entry(user_id).await
            && e.node == self.node
            && let Err(e) = self.stream.delete_message(seq).await
        {
            tracing::debug!(error = %e, "presence delete failed");
        }
    }

    /// Whether `user_id` has a live entry.
    ///
    /// # Errors
    /// Never at present; kept fallible for stores that can fail.
    pub async fn is_online(&self, user_id: &str) -> anyhow::Result<bool> {
        Ok(self.entry(user_id).await.is_some())
    }

    /// Rewrites the keys of this node's users every third of the TTL until stopped.
    pub async fn refresh(self, registry: Registry, stop: CancellationToken) {
        let mut tick = tokio::time::interval((self.ttl / 3).max(Duration::from_millis(200)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {
                    for user in registry.user_ids() {
                        self.online(&user).await;
                    }
                }
            }
        }
    }
}
