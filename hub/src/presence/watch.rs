//! Pushed presence: a node's sockets watch the other participants of appointments, and get
//! `presence {appointment_id, user_id, online}` when one goes online or offline.
//!
//! A socket watches in two ways. It *follows* the other participants of its user's open
//! appointments (set up by [`super::follow`] at sign-in and as appointments change); such a
//! watch starts from "offline", so a participant who is online when it starts is pushed as
//! online, and one who is not is pushed nothing until they come. It also watches the other
//! participant of every appointment it names in a frame (`presence_get`, chat, typing, calls);
//! such a watch starts from what `presence_get` answered, or else from the first state read,
//! and pushes only changes from there.
//!
//! A watched user's state is read again when any node announces a change of theirs
//! (`carehub.hub.presence.<user_id>`), and every poll interval (a node that died announces
//! nothing: its entries expire). A change is pushed at once, or, within a second of the last
//! push about that user, when the second has passed (then with the state of that moment): at
//! most one push per watched user per second, and the last push tells the current state.

use super::Presence;
use crate::registry::Conn;
use carehub_nats::hub::{ServerFrame, subject};
use futures::StreamExt as _;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// At most one push about a watched user per this interval.
const PUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How often pending pushes are looked at.
const TICK: Duration = Duration::from_millis(100);
/// Appointments one socket follows at most (the newest open ones; see [`super::follow`]).
pub(crate) const MAX_FOLLOWED: usize = 50;

struct Watcher {
    conn_id: u64,
    conn: Weak<Conn>,
    /// Shared with the socket's entry in [`State::followed`] and with the sockets that copied it.
    appointment_id: Arc<str>,
    /// What this socket was last told (`None`: nothing yet, take the first read as known).
    told: Option<bool>,
    /// Set up from the user's appointments rather than by a frame of the socket.
    followed: bool,
}

#[derive(Default)]
struct Watched {
    /// The last state read (`None` before the first read).
    online: Option<bool>,
    last_push: Option<Instant>,
    watchers: Vec<Watcher>,
}

/// One followed appointment of a socket and its other participant.
pub(crate) type Followed = (Arc<str>, Arc<str>);

#[derive(Default)]
struct State {
    users: HashMap<String, Watched>,
    /// What each socket follows, as `(appointment_id, other participant)` (for the cap, and
    /// for a later socket of the same user to copy).
    followed: HashMap<u64, Vec<Followed>>,
    /// Sockets whose follows are complete: their sign-in listing ended (or they copied from
    /// such a socket), and appointment events have kept them current since.
    settled: HashSet<u64>,
}

impl State {
    /// See [`Watches::follow`].
    fn follow(&mut self, conn: &Arc<Conn>, (appointment_id, user_id): &Followed) -> bool {
        let already = self.users.get(&**user_id).is_some_and(|w| {
            w.watchers
                .iter()
                .any(|x| x.conn_id == conn.id && x.appointment_id == *appointment_id)
        });
        if already {
            return true;
        }
        let mine = self.followed.entry(conn.id).or_default();
        if mine.len() >= MAX_FOLLOWED {
            return false;
        }
        mine.push((appointment_id.clone(), user_id.clone()));
        self.users
            .entry(user_id.to_string())
            .or_default()
            .watchers
            .push(Watcher {
                conn_id: conn.id,
                conn: Arc::downgrade(conn),
                appointment_id: appointment_id.clone(),
                told: Some(false),
                followed: true,
            });
        true
    }
}

/// The watches of one node. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Watches {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Watches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watches").finish_non_exhaustive()
    }
}

impl Watches {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `conn` watches `user_id`, the other participant of `appointment_id`, because it named
    /// the appointment; `known` is the state the socket was just told, if any.
    pub(crate) fn watch(
        &self,
        conn: &Arc<Conn>,
        appointment_id: &str,
        user_id: &str,
        known: Option<bool>,
    ) {
        let mut st = self.state();
        let w = st.users.entry(user_id.to_owned()).or_default();
        if let Some(k) = known {
            w.online = Some(k);
        }
        let told = known.or(w.online);
        if let Some(x) = w
            .watchers
            .iter_mut()
            .find(|x| x.conn_id == conn.id && &*x.appointment_id == appointment_id)
        {
            if known.is_some() {
                x.told = known;
            }
            return;
        }
        w.watchers.push(Watcher {
            conn_id: conn.id,
            conn: Arc::downgrade(conn),
            appointment_id: appointment_id.into(),
            told,
            followed: false,
        });
    }

    /// `conn` follows `user_id`, the other participant of its user's open appointment
    /// `appointment_id`, starting from "offline". Returns `false` when the socket already
    /// follows [`MAX_FOLLOWED`] appointments (the watch is not added).
    pub(crate) fn follow(&self, conn: &Arc<Conn>, appointment_id: &str, user_id: &str) -> bool {
        self.state()
            .follow(conn, &(appointment_id.into(), user_id.into()))
    }

    /// `conn` follows each `(appointment_id, user_id)` of a sign-in listing of its user, as
    /// [`Self::follow`] does; when the listing was `complete`, `conn` counts as settled, so a
    /// later socket of its user copies its follows ([`Self::copy_follows`]) instead of listing.
    pub(crate) fn follow_listed(&self, conn: &Arc<Conn>, listed: &[Followed], complete: bool) {
        let mut st = self.state();
        for f in listed {
            st.follow(conn, f);
        }
        if complete {
            st.settled.insert(conn.id);
        }
    }

    /// `to` follows what the settled socket `from` (of the same user) follows, and is settled
    /// too. Returns `false`, changing nothing, when `from` is not settled (its listing has not
    /// ended, or it closed).
    pub(crate) fn copy_follows(&self, from: u64, to: &Arc<Conn>) -> bool {
        let mut st = self.state();
        if !st.settled.contains(&from) {
            return false;
        }
        let theirs = st.followed.get(&from).cloned().unwrap_or_default();
        for f in &theirs {
            st.follow(to, f);
        }
        st.settled.insert(to.id);
        true
    }

    /// Drops the followed watches of `appointment_id` except those of a socket of `a` watching
    /// `b` for a pair `(a, b)` in `keep` (its current participants; none once it ended).
    pub(crate) fn unfollow(&self, appointment_id: &str, keep: &[(&str, &str)]) {
        let mut guard = self.state();
        let st = &mut *guard;
        for (user, w) in &mut st.users {
            w.watchers.retain(|x| {
                // A socket that is gone is dropped too (its cleanup forgets the rest).
                let kept = x
                    .conn
                    .upgrade()
                    .is_some_and(|c| keep.contains(&(c.user_id.as_str(), user.as_str())));
                let drop = x.followed && &*x.appointment_id == appointment_id && !kept;
                if drop && let Some(mine) = st.followed.get_mut(&x.conn_id) {
                    mine.retain(|(a, u)| !(&**a == appointment_id && &**u == user));
                }
                !drop
            });
        }
        st.users.retain(|_, w| !w.watchers.is_empty());
    }

    /// Drops the watches of a closed socket.
    pub(crate) fn forget(&self, conn_id: u64) {
        let mut st = self.state();
        st.followed.remove(&conn_id);
        st.settled.remove(&conn_id);
        st.users.retain(|_, w| {
            w.watchers.retain(|x| x.conn_id != conn_id);
            !w.watchers.is_empty()
        });
    }

    fn watched(&self) -> Vec<String> {
        self.state().users.keys().cloned().collect()
    }

    fn is_watched(&self, user_id: &str) -> bool {
        self.state().users.contains_key(user_id)
    }

    /// Records a fresh read of `user_id`.
    fn set(&self, user_id: &str, online: bool) {
        if let Some(w) = self.state().users.get_mut(user_id) {
            w.online = Some(online);
        }
    }

    /// Pushes the changes that may go now.
    fn push_due(&self, now: Instant) {
        let mut out = Vec::new();
        for (user, w) in &mut self.state().users {
            let Some(online) = w.online else { continue };
            // A watch that was told nothing takes the first state read as known.
            for x in &mut w.watchers {
                x.told.get_or_insert(online);
            }
            let changed = w.watchers.iter().any(|x| x.told != Some(online));
            let may = w.last_push.is_none_or(|t| now >= t + PUSH_INTERVAL);
            if !(changed && may) {
                continue;
            }
            w.last_push = Some(now);
            for x in &mut w.watchers {
                if x.told == Some(online) {
                    continue;
                }
                x.told = Some(online);
                if let Some(conn) = x.conn.upgrade() {
                    let f = ServerFrame::Presence {
                        appointment_id: x.appointment_id.to_string(),
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

    /// Reads the state of `user_id` now.
    pub(crate) async fn read(&self, presence: &Presence, user_id: &str) {
        match presence.is_online(user_id).await {
            Ok(online) => self.set(user_id, online),
            Err(e) => tracing::debug!(error = %e, "presence read failed"),
        }
    }

    /// Follows announced changes and polls watched users until stopped.
    ///
    /// # Errors
    /// When the change subject cannot be subscribed to.
    pub(crate) async fn run(
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
                    if self.is_watched(&user) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use carehub_nats::{Principal, Role, UserStatus};

    fn conn(id: u64, user_id: &str) -> Arc<Conn> {
        let principal = Principal {
            user_id: user_id.into(),
            role: Role::Patient,
            status: UserStatus::Active,
            jti: "j".into(),
            session_id: "s".into(),
            expires_at: 0,
        };
        Arc::new(Conn::new(id, principal, tokio::sync::mpsc::channel(1).0))
    }

    fn followed(w: &Watches, conn_id: u64) -> Vec<(String, String)> {
        let st = w.state();
        let mut v: Vec<_> = st
            .followed
            .get(&conn_id)
            .into_iter()
            .flatten()
            .map(|(a, u)| (a.to_string(), u.to_string()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_later_socket_copies_the_follows_of_a_settled_one_as_events_left_them() {
        let w = Watches::default();
        let (first, second, third) = (conn(1, "p"), conn(2, "p"), conn(3, "p"));
        let listed: Vec<Followed> = vec![("a1".into(), "d1".into()), ("a2".into(), "d2".into())];

        // A listing that did not complete settles nobody: there is nothing to copy.
        w.follow_listed(&first, &listed[..1], false);
        assert!(!w.copy_follows(first.id, &second));
        w.follow_listed(&first, &listed, true);
        // An appointment event ended a2 and confirmed a3 meanwhile.
        w.unfollow("a2", &[]);
        assert!(w.follow(&first, "a3", "d3"));

        assert!(w.copy_follows(first.id, &second));
        let want = vec![("a1".into(), "d1".into()), ("a3".into(), "d3".into())];
        assert_eq!(followed(&w, second.id), want);
        // Each copy is a watch of its own: the watched users have one watcher per socket.
        assert_eq!(w.state().users["d1"].watchers.len(), 2);
        assert!(!w.state().users.contains_key("d2"));

        // A closed socket is no longer settled; the copy settled the second one.
        w.forget(first.id);
        assert!(!w.copy_follows(first.id, &third));
        assert!(w.copy_follows(second.id, &third));
        assert_eq!(followed(&w, third.id), want);
    }
}
