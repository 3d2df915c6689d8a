//! One actor per doctor group: applies the group's routing strategy.
//!
//! Messages:
//! - `Pick { appointment, tried, reply }`: reads a [`Snapshot`] of the members (tried,
//!   available, loads, cursor) and answers what the group's [`strategy`] picks from it: the
//!   doctors to offer the request to (none when no member is available), and for round robin
//!   the cursor to store with the offers.
//!   The group definition is loaded in `pre_start`; the round-robin cursor is read from the
//!   database at each pick, so a restart keeps the rotation.
//! - `Reload`: re-reads the group after an admin changed it.

use super::mailbox::{Envelope, Kind};
use super::strategy::{self, Member, Snapshot};
use super::{Core, available};
use crate::store::{self, AppointmentRow, GroupRow};
use carehub_nats::appointment::Strategy;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

/// The doctors a pick chose.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pick {
    pub(crate) doctors: Vec<String>,
    /// Offer deadline in milliseconds.
    pub(crate) deadline_ms: i64,
    /// Round robin: the cursor to store together with the offers.
    pub(crate) rr_cursor: Option<i64>,
}

pub(crate) enum GroupMsg {
    Pick {
        appointment: Box<AppointmentRow>,
        tried: Vec<String>,
        reply: RpcReplyPort<Result<Pick, String>>,
    },
    Reload,
}

impl Kind for GroupMsg {
    const KIND: &'static str = "group";
}

pub(crate) struct GroupActor;

pub(crate) struct GroupState {
    core: Core,
    group_id: String,
    group: Option<(GroupRow, Vec<String>)>,
}

impl Actor for GroupActor {
    type Msg = Envelope<GroupMsg>;
    type State = GroupState;
    type Arguments = (Core, String);

    async fn pre_start(
        &self,
        _me: ActorRef<Envelope<GroupMsg>>,
        (core, group_id): (Core, String),
    ) -> Result<GroupState, ActorProcessingErr> {
        let group = store::group(&core.db, &group_id).await?;
        Ok(GroupState {
            core,
            group_id,
            group,
        })
    }

    async fn handle(
        &self,
        _me: ActorRef<Envelope<GroupMsg>>,
        msg: Envelope<GroupMsg>,
        st: &mut GroupState,
    ) -> Result<(), ActorProcessingErr> {
        let (msg, _queued) = msg.open();
        match msg {
            GroupMsg::Reload => st.group = store::group(&st.core.db, &st.group_id).await?,
            GroupMsg::Pick {
                appointment,
                tried,
                reply,
            } => {
                let result = pick(st, &appointment, &tried)
                    .await
                    .map_err(|e| e.to_string());
                let _ = reply.send(result);
            }
        }
        Ok(())
    }
}

async fn pick(
    st: &GroupState,
    a: &AppointmentRow,
    tried: &[String],
) -> Result<Pick, carehub_runtime::db::StoreError> {
    let Some((group, members)) = &st.group else {
        return Ok(Pick::default());
    };
    let deadline_ms = group.accept_deadline_secs.saturating_mul(1000);
    let mut snapshot = Snapshot::default();
    for m in members {
        let tried = tried.contains(m);
        let available = !tried
            && match store::doctor(&st.core.db, m).await? {
                Some(d) => available(&st.core, &d, a.window_start, a.window_end).await?,
                None => false,
            };
        snapshot.members.push(Member {
            id: m.clone(),
            tried,
            available,
            load: 0,
        });
    }
    if snapshot.has_candidate() {
        match group.strategy {
            Strategy::LeastLoaded => {
                for m in snapshot.members.iter_mut().filter(|m| m.available) {
                    m.load = store::load(&st.core.db, &m.id, a.window_start, a.window_end).await?;
                }
            }
            // The cursor as stored now: another instance may have moved it since the load.
            Strategy::RoundRobin => {
                let fresh = store::group(&st.core.db, &group.id).await?;
                snapshot.cursor = fresh.map_or(group.rr_cursor, |(g, _)| g.rr_cursor);
            }
            Strategy::Broadcast => {}
        }
    }
    let choice = strategy::pick(group.strategy, &snapshot);
    Ok(Pick {
        doctors: choice.doctors,
        deadline_ms,
        rr_cursor: choice.next_cursor,
    })
}
