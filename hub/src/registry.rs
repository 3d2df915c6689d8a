//! The sockets connected to this node, grouped by user, and each user's NATS subscriptions.
//!
//! The first socket of a user subscribes this node to `carehub.hub.user.<id>` (frames for that
//! user from any node) and `carehub.push.user.<id>` (notifications); the last one to close
//! unsubscribes. A socket's frames go through its bounded queue: when the queue is full, delivery
//! to that user on this node waits (the frames wait in the node's subscription) until the
//! socket's writer makes room, or until the writer finds the peer not reading (a write blocked
//! for the write timeout) and closes it with 4008. So a client that reads never loses a frame
//! and a client that does not read holds up its own user's frames for at most the write timeout.

use bytes::Bytes;
use carehub_bus::Bus;
use carehub_nats::Principal;
use carehub_nats::hub::{ServerFrame, hub_user_subject};
use carehub_nats::notify::{NotificationPushed, push_subject};
use futures::StreamExt as _;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

/// One socket, as the rest of the node sees it.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) id: u64,
    pub user_id: String,
    /// Who the socket's current token belongs to (replaced by a renewed `auth`).
    principal: Mutex<Principal>,
    queue: mpsc::Sender<Utf8Bytes>,
    closing: CancellationToken,
    close_code: AtomicU16,
}

impl Conn {
    /// Wraps a socket's outbound queue.
    pub(crate) fn new(id: u64, principal: Principal, queue: mpsc::Sender<Utf8Bytes>) -> Self {
        Self {
            id,
            user_id: principal.user_id.clone(),
            principal: Mutex::new(principal),
            queue,
            closing: CancellationToken::new(),
            close_code: AtomicU16::new(0),
        }
    }

    /// The socket's current principal.
    pub(crate) fn principal(&self) -> Principal {
        self.principal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the principal after a renewed `auth`.
    pub(crate) fn set_principal(&self, p: Principal) {
        *self
            .principal
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = p;
    }

    /// Queues a serialized frame, waiting while the queue is full (the writer empties it, or
    /// closes the socket as too slow when the peer does not read). Returns whether the frame
    /// was queued; false once the socket is closing.
    pub(crate) async fn deliver(&self, text: Utf8Bytes) -> bool {
        tokio::select! {
            biased;
            r = self.queue.send(text) => r.is_ok(),
            () = self.closing.cancelled() => false,
        }
    }

    /// Serializes and queues a frame, waiting for room as [`Conn::deliver`] does.
    pub(crate) async fn reply(&self, frame: &ServerFrame) -> bool {
        match encode(frame) {
            Some(t) => self.deliver(t).await,
            None => false,
        }
    }

    /// Serializes and queues a frame without waiting, for frames from outside the socket's
    /// reader (hints): when the queue is full a task waits for room, so such a frame may come
    /// after frames queued later.
    pub(crate) fn send(self: &Arc<Self>, frame: &ServerFrame) -> bool {
        let Some(text) = encode(frame) else {
            return false;
        };
        match self.queue.try_send(text) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(text)) => {
                let conn = self.clone();
                tokio::spawn(async move { conn.deliver(text).await });
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Asks the socket to close with `code`; the first code wins. Returns whether this call
    /// was the first.
    pub(crate) fn close(&self, code: u16) -> bool {
        let first = self
            .close_code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        self.closing.cancel();
        first
    }

    /// The close code asked for, if any.
    pub(crate) fn close_code(&self) -> Option<u16> {
        match self.close_code.load(Ordering::Acquire) {
            0 => None,
            c => Some(c),
        }
    }

    /// Cancelled once the socket should close.
    pub(crate) fn closing(&self) -> &CancellationToken {
        &self.closing
    }
}

fn encode(frame: &ServerFrame) -> Option<Utf8Bytes> {
    match serde_json::to_string(frame) {
        Ok(s) => Some(Utf8Bytes::from(s)),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a frame");
            None
        }
    }
}

struct UserSlot {
    conns: Vec<Arc<Conn>>,
    ready: watch::Receiver<bool>,
    stop: CancellationToken,
}

/// The node's sockets by user.
#[derive(Clone)]
pub(crate) struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    bus: Bus,
    users: Mutex<HashMap<String, UserSlot>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    pub(crate) fn new(bus: Bus) -> Self {
        Self {
            inner: Arc::new(Inner {
                bus,
                users: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// A fresh socket id.
    pub(crate) fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<String, UserSlot>> {
        self.inner
            .users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a socket; returns once this node receives the user's frames. Returns whether it
    /// is the user's first socket on this node.
    pub(crate) async fn register(&self, conn: Arc<Conn>) -> bool {
        let (mut ready, first) = {
            let mut users = self.users();
            if let Some(slot) = users.get_mut(&conn.user_id) {
                slot.conns.push(conn.clone());
                (slot.ready.clone(), false)
            } else {
                let (tx, rx) = watch::channel(false);
                let stop = CancellationToken::new();
                users.insert(
                    conn.user_id.clone(),
                    UserSlot {
                        conns: vec![conn.clone()],
                        ready: rx.clone(),
                        stop: stop.clone(),
                    },
                );
                tokio::spawn(user_feed(self.clone(), conn.user_id.clone(), tx, stop));
                (rx, true)
            }
        };
        // The feed reports ready after its subscriptions reached the server; a feed that failed
        // drops its sender, and the socket goes on (frames from other nodes are then missed, and
        // a reconnect resubscribes).
        let _ = ready.wait_for(|r| *r).await;
        first
    }

    /// Removes a socket; returns whether it was the user's last on this node.
    pub(crate) fn unregister(&self, conn: &Conn) -> bool {
        let mut users = self.users();
        let Some(slot) = users.get_mut(&conn.user_id) else {
            return false;
        };
        slot.conns.retain(|c| c.id != conn.id);
        if slot.conns.is_empty() {
            if let Some(slot) = users.remove(&conn.user_id) {
                slot.stop.cancel();
            }
            true
        } else {
            false
        }
    }

    /// The local sockets of `user_id`.
    pub(crate) fn conns_of(&self, user_id: &str) -> Vec<Arc<Conn>> {
        self.users()
            .get(user_id)
            .map(|slot| slot.conns.clone())
            .unwrap_or_default()
    }

    /// Queues `text` on every local socket of `user_id`, waiting for room in each queue.
    pub(crate) async fn deliver_local(&self, user_id: &str, text: &Utf8Bytes) {
        for c in self.conns_of(user_id) {
            c.deliver(text.clone()).await;
        }
    }

    /// Closes every local socket whose principal matches.
    pub(crate) fn close_where(&self, code: u16, matches: impl Fn(&Principal) -> bool) -> usize {
        let users = self.users();
        let mut n = 0;
        for c in users.values().flat_map(|s| s.conns.iter()) {
            if matches(&c.principal()) {
                c.close(code);
                n += 1;
            }
        }
        n
    }

    /// Closes every local socket (node shutdown).
    pub(crate) fn close_all(&self, code: u16) {
        for c in self.users().values().flat_map(|s| s.conns.iter()) {
            c.close(code);
        }
    }

    /// The users with at least one socket here.
    pub(crate) fn user_ids(&self) -> Vec<String> {
        self.users().keys().cloned().collect()
    }

    /// Whether `user_id` has a socket on this node.
    pub(crate) fn has_user(&self, user_id: &str) -> bool {
        self.users().contains_key(user_id)
    }

    /// Publishes a frame to every socket of `user_id`, on whichever nodes they are.
    ///
    /// # Errors
    /// When the frame cannot be encoded or the NATS client is closed.
    pub(crate) async fn send_to_user(
        &self,
        user_id: &str,
        frame: &ServerFrame,
    ) -> Result<(), carehub_bus::BusError> {
        self.inner
            .bus
            .publish(&hub_user_subject(user_id), frame)
            .await
    }
}

/// Forwards a user's frames and notifications from NATS to their local sockets until stopped.
async fn user_feed(
    registry: Registry,
    user_id: String,
    ready: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let client = registry.inner.bus.client().clone();
    let subs = async {
        let frames = client.subscribe(hub_user_subject(&user_id)).await?;
        let pushes = client.subscribe(push_subject(&user_id)).await?;
        client.flush().await.map_err(|e| anyhow::anyhow!(e))?;
        Ok::<_, anyhow::Error>((frames, pushes))
    };
    let (mut frames, mut pushes) = match subs.await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, user_id, "cannot subscribe to a user's frames");
            return;
        }
    };
    let _ = ready.send(true);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            m = frames.next() => match m {
                Some(m) => {
                    if let Some(text) = utf8(m.payload) {
                        registry.deliver_local(&user_id, &text).await;
                    }
                }
                None => break,
            },
            m = pushes.next() => match m {
                Some(m) => match serde_json::from_slice::<NotificationPushed>(&m.payload) {
                    Ok(p) => {
                        let frame = ServerFrame::Notification {
                            notification: p.notification,
                            unread_count: p.unread_count,
                        };
                        if let Ok(s) = serde_json::to_string(&frame) {
                            registry.deliver_local(&user_id, &Utf8Bytes::from(s)).await;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "undecodable notification push"),
                },
                None => break,
            },
        }
    }
    let _ = frames.unsubscribe().await;
    let _ = pushes.unsubscribe().await;
}

fn utf8(payload: Bytes) -> Option<Utf8Bytes> {
    Utf8Bytes::try_from(payload).ok()
}
