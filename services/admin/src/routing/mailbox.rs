//! Mailbox depth of the routing actors, `carehub_actor_mailbox_depth{actor}`.
//!
//! ractor does not expose how many messages wait in a mailbox, so each message travels in an
//! [`Envelope`] that adds one to its actor kind's gauge when it is made and takes it away when it
//! is dropped: after `handle` returns, or with the mailbox of an actor that stopped. The gauge
//! thus counts queued messages plus the one being handled, and cannot drift.

use carehub_runtime::metrics::Held;

/// An actor kind: the `actor` label of its mailbox gauge.
pub(crate) trait Kind {
    const KIND: &'static str;
}

/// A message on its way to (or being handled by) an actor of kind `M::KIND`.
pub(crate) struct Envelope<M> {
    pub(crate) msg: M,
    queued: Held,
}

impl<M> Envelope<M> {
    /// The message, and the guard that keeps it counted until dropped.
    pub(crate) fn open(self) -> (M, Held) {
        (self.msg, self.queued)
    }
}

impl<M: Kind> From<M> for Envelope<M> {
    fn from(msg: M) -> Self {
        Self {
            msg,
            queued: Held::new(metrics::gauge!(
                "carehub_actor_mailbox_depth",
                "component" => "admin",
                "actor" => M::KIND
            )),
        }
    }
}
