//! Pushed presence: the node's sockets watch the other participants of the appointments they
//! used (`presence_get`, or any frame naming an appointment), and get
//! `presence {appointment_id, user_id, online}` when one goes online or offline.
//!
//! A watched user's state is read again when any node announces a change of theirs
//! (`carehub.hub.presence.<user_id>`), and every poll interval (a node that died announces
//! nothing: its entries expire). A change is pushed at once, or, within a second of the last
//! push about that user, when the second has passed (then with the state of that moment): at
//! most one push per watched user per second.

use super::Presence;
use crate::registry::Conn;
use carehub_nats::hub::{ServerFrame, subject};
use futures::StreamExt as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// At most one push about a watched user per this interval.
const PUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How often pending pushes are looked at.
const TICK: Duration = Duration::from_millis(100);

struct Watcher {
    conn_id: u64,
    conn: Weak<Conn>,
    appointment_id: String,
}

#[derive(Default)]
struct Watched {
    /// The last state read (`None` before the first read).
    online: Option<bool>,
    /// The last state pushed (or answered), to push only changes.
    told: Option<bool>,
    last_push: Option<Instant>,
    watchers: Vec<Watcher>,
}

/// The watches of one node. Cheap to clone.
#[derive(Clone, Default)]
pub struct Watches {
    users: Arc<Mutex<HashMap<String, Watched>>>,
}

impl std::fmt::Debug for Watches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watches").finish_non_exhaustive()
    }
}

impl Watches {
    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<String, Watched>> {
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `conn` watches `user_id`, the other participant of `appointment_id`; `known` is the
    /// state the socket was just told, if any.
    pub fn watch(
        &self,
        conn: &Arc<Conn>,
        appointment_id: &str,
        user_id: &str,
        known: Option<bool>,
    ) {
        let mut users = self.users();
        let w = users.entry(user_id.to_owned()).or_default();
        if let Some(k) = known {
            w.online = Some(k);
            w.told = Some(k);
        }
        let dup = w
            .watchers
            .iter()
            .any(|x| x.conn_id == conn.id && x.appointment_id == appointment_id);
        if !dup {
            w.watchers.push(Watcher {
                conn_id: conn.id,
                conn: Arc::downgrade(conn),
                appointment_id: appointment_id.to_owned(),
            });
        }
    }

    /// Drops the watches of a closed socket.
    pub fn forget(&self, conn_id: u64) {
        self.users().retain(|_, w| {
            w.watchers.retain(|x| x.conn_id != conn_id);
            !w.watchers.is_empty()
        });
    }

    fn watched(&self) -> Vec<String> {
        self.users().keys().cloned().collect()
    }

    /// Records a fresh read of `user_id`.
    fn set(&self, user_id: &str, online: bool) {
        if let Some(w) = self.users().get_mut(user_id) {
            if w.told.is_none() && w.online.is_none() {
                w.told = Some(online);
            }
            w.online = Some(online);
        }
    }

    /// Pushes the changes that may go now.
    fn push_due(&self, now: Instant) {
        let mut out = Vec::new();
        for (user, w) in self.users().iter_mut() {
            let Some(online) = w.online else { continue };
            let changed = w.told != Some(online);
            let may = w.last_push.is_none_or(|t| now >= t + PUSH_INTERVAL);
            if !(changed && may) {
                continue;
            }
            w.told = Some(online);
            w.last_push = Some(now);
            for x in &w.watchers {
                if let Some(conn) = x.conn.upgrade() {
                    let f = ServerFrame::Presence {
                        appointment_id: x.appointment_id.clone(),
                        user_id: user.clone(),
                        online,
                    };
                    out.push((conn, f));
                }
            }
        }
        for (conn, f) in out {
            conn.send(&f);
        }
    }

    async fn read(&self, presence: &Presence, user_id: &str) {
        match presence.is_online(user_id).await {
            Ok(online) => self.set(user_id, online),
            Err(e) => tracing::debug!(error = %e, "presence read failed"),
        }
    }

    /// Follows announced changes and polls watched users until stopped.
    ///
    /// # Errors
    /// When the change subject cannot be subscribed to.
    pub async fn run(
        self,
        presence: Presence,
        client: async_nats::Client,
        stop: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut changes = client
            .subscribe(format!("{}.*", subject::PRESENCE_CHANGED_PREFIX))
            .await?;
        let poll = (presence.ttl() / 6).clamp(Duration::from_secs(1), Duration::from_secs(5));
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_poll = Instant::now();
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                m = changes.next() => {
                    let Some(m) = m else { break };
                    let user = m.subject.as_str().rsplit('.').next().unwrap_or_default().to_owned();
                    if self.users().contains_key(&user) {
                        self.read(&presence, &user).await;
                        self.push_due(Instant::now());
                    }
                }
                _ = tick.tick() => {
                    if last_poll.elapsed() >= poll {
                        last_poll = Instant::now();
                        for user in self.watched() {
                            self.read(&presence, &user).await;
                        }
                    }
                    self.push_due(Instant::now());
                }
            }
        }
        Ok(())
    }
}
