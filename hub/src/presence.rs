//! Who is online, across nodes: a JetStream stream keeping the last message per subject
//! `carehub.presence.<user_id>.<node>` (a key-value store in all but name; the client's KV API
//! does not create buckets on nats-server 2.9), one entry per node holding a socket of the user.
//! A user is online while any entry of theirs lives: the union over nodes.
//!
//! A node writes its entry when a user's first socket on it opens and rewrites its entries every
//! third of the TTL; it removes an entry when the user's last socket on it closes, and all of its
//! entries when it stops cleanly. The stream's `max_age` (the TTL) drops the entries of a node
//! that died without cleaning up. After each write or removal the node announces the change on
//! `carehub.hub.presence.<user_id>`, which [`watch`] turns into pushed `presence` frames for
//! the sockets watching that user; [`follow`] decides whom a socket watches unasked.

pub(crate) mod follow;
pub(crate) mod watch;

use async_nats::jetstream::{self, stream};
use carehub_nats::hub::{PresenceEntry, subject};
use carehub_runtime::db::now_ms;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::registry::Registry;

/// The presence stream, as this node uses it.
#[derive(Clone)]
pub(crate) struct Presence {
    js: jetstream::Context,
    client: async_nats::Client,
    stream: stream::Stream,
    node: String,
    ttl: Duration,
    /// Writes and removals of one user on this node take turns (striped by user), so a socket
    /// opening while the user's last one closes cannot leave the entry removed.
    turns: std::sync::Arc<[tokio::sync::Mutex<()>]>,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence")
            .field("node", &self.node)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// A node id as one subject token.
fn token(node: &str) -> String {
    node.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The subject a node announces a change of `user_id` on.
pub(crate) fn changed_subject(user_id: &str) -> String {
    format!("{}.{user_id}", subject::PRESENCE_CHANGED_PREFIX)
}

fn stream_config(ttl: Duration, replicas: usize) -> stream::Config {
    stream::Config {
        name: subject::PRESENCE_STREAM.into(),
        subjects: vec![format!("{}.*.*", subject::PRESENCE_PREFIX)],
        description: Some("carehub hub presence: user id and node -> last seen".into()),
        max_messages_per_subject: 1,
        max_age: ttl,
        storage: stream::StorageType::Memory,
        num_replicas: replicas.max(1),
        ..Default::default()
    }
}

impl Presence {
    /// Opens the stream, creating it with `ttl` as its `max_age` when it does not exist and
    /// updating an older layout (one entry per user) to this one.
    ///
    /// # Errors
    /// When JetStream is unavailable.
    pub(crate) async fn open(
        client: async_nats::Client,
        node: &str,
        ttl: Duration,
        replicas: usize,
    ) -> anyhow::Result<Self> {
        let js = jetstream::new(client.clone());
        let config = stream_config(ttl, replicas);
        // Hub nodes starting together race to create it: the losers find it on a retry. On a
        // cluster a stream just created by another node may also answer its info with "stream
        // not found" until its replicas have elected a leader, so that is retried too.
        let mut attempt = 0u32;
        let (mut stream, info) = loop {
            let opened = async {
                let mut s = js.get_or_create_stream(config.clone()).await?;
                let info = s.info().await?.clone();
                anyhow::Ok((s, info))
            }
            .await;
            match opened {
                Ok(found) => break found,
                Err(e) if attempt < 8 => {
                    attempt += 1;
                    tracing::debug!(error = %e, "presence stream not ready; retrying");
                    tokio::time::sleep(Duration::from_millis(250) * attempt).await;
                }
                Err(e) => return Err(e),
            }
        };
        if info.config.subjects != config.subjects || info.config.max_age != config.max_age {
            if let Err(e) = js.update_stream(config).await {
                tracing::warn!(error = %e, "presence stream kept its older settings");
            }
            stream = js.get_stream(subject::PRESENCE_STREAM).await?;
        }
        Ok(Self {
            js,
            client,
            stream,
            node: token(node),
            ttl,
            turns: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
        })
    }

    fn key(&self, user_id: &str) -> String {
        format!("{}.{user_id}.{}", subject::PRESENCE_PREFIX, self.node)
    }

    /// Announces that this node's entry of `user_id` changed.
    async fn announce(&self, user_id: &str) {
        let _ = self
            .client
            .publish(changed_subject(user_id), bytes::Bytes::new())
            .await;
    }

    /// Writes this node's entry of `user_id`.
    async fn write(&self, user_id: &str) {
        let entry = PresenceEntry {
            node: self.node.clone(),
            at: now_ms(),
        };
        let Ok(value) = serde_json::to_vec(&entry) else {
            return;
        };
        match self.js.publish(self.key(user_id), value.into()).await {
            Ok(ack) => {
                if let Err(e) = ack.await {
                    tracing::warn!(error = %e, "presence write not stored");
                }
            }
            Err(e) => tracing::warn!(error = %e, "presence write failed"),
        }
    }

    fn turn(&self, user_id: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::{BuildHasher as _, BuildHasherDefault};
        let h = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .hash_one(user_id);
        let i = usize::try_from(h % self.turns.len() as u64).unwrap_or(0);
        &self.turns[i]
    }

    /// Brings this node's entry of `user_id` in line with its sockets here (called when their
    /// first socket here opened or their last closed), then announces the change.
    pub(crate) async fn sync(&self, user_id: &str, registry: &Registry) {
        {
            let _turn = self.turn(user_id).lock().await;
            if registry.has_user(user_id) {
                self.write(user_id).await;
            } else if let Err(e) = self.stream.purge().filter(self.key(user_id)).await {
                tracing::warn!(error = %e, "presence removal failed");
            }
        }
        self.announce(user_id).await;
    }

    /// Removes every entry of this node (a clean stop) and announces `users` as changed.
    pub(crate) async fn stop(&self, users: &[String]) {
        let all = format!("{}.*.{}", subject::PRESENCE_PREFIX, self.node);
        if let Err(e) = self.stream.purge().filter(all).await {
            tracing::warn!(error = %e, "presence removal at stop failed");
        }
        for u in users {
            self.announce(u).await;
        }
        let _ = self.client.flush().await;
    }

    /// Whether `user_id` has a live entry on any node.
    ///
    /// # Errors
    /// When the stream cannot be read.
    pub(crate) async fn is_online(&self, user_id: &str) -> anyhow::Result<bool> {
        let any = format!("{}.{user_id}.*", subject::PRESENCE_PREFIX);
        let m = match self.stream.get_last_raw_message_by_subject(&any).await {
            Ok(m) => m,
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        let e: PresenceEntry = serde_json::from_slice(&m.payload)?;
        let ttl = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        Ok(now_ms() - e.at < ttl)
    }

    /// Rewrites the entries of this node's users every third of the TTL until stopped.
    pub(crate) async fn refresh(self, registry: Registry, stop: CancellationToken) {
        let mut tick = tokio::time::interval((self.ttl / 3).max(Duration::from_millis(200)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {
                    for user in registry.user_ids() {
                        let _turn = self.turn(&user).lock().await;
                        if registry.has_user(&user) {
                            self.write(&user).await;
                        }
                    }
                }
            }
        }
    }

    /// The entry lifetime.
    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }
}
