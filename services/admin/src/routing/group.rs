//! One actor per doctor group: applies the group's routing strategy.
//!
//! Messages:
//! - `Pick { appointment, tried, reply }`: answers the doctors to offer the request to (none
//!   when no member is available), and for round robin the cursor to store with the offers.
//!   The group definition is loaded in `pre_start`; the round-robin cursor is read from the
//!   database at each pick, so a restart keeps the rotation.
//! - `Reload`: re-reads the group after an admin changed it.

use super::mailbox::{Envelope, Kind};
use super::{Core, available};
use crate::store::{self, AppointmentRow, GroupRow};
use carehub_nats::appointment::Strategy;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

/// The doctors a pick chose.
#[derive(Debug, Clone, Default)]
pub struct Pick {
    pub doctors: Vec<String>,
    /// Offer deadline in milliseconds.
    pub deadline_ms: i64,
    /// Round robin: the cursor to store together with the offers.
    pub rr_cursor: Option<i64>,
}

pub enum GroupMsg {
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

pub struct GroupActor;

pub struct GroupState {
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
    let mut candidates = Vec::new();
    for (pos, m) in members.iter().enumerate() {
        if tried.contains(m) {
            continue;
        }
        let Some(d) = store::doctor(&st.core.db, m).await? else {
            continue;
        };
        if available(&st.core, &d, a.window_start, a.window_end).await? {
            candidates.push((pos, m.clone()));
        }
    }
    let deadline_ms = group.accept_deadline_secs.saturating_mul(1000);
    if candidates.is_empty() {
        return Ok(Pick {
            doctors: Vec::new(),
            deadline_ms,
            rr_cursor: None,
        });
    }
    let n = i64::try_from(members.len()).unwrap_or(1).max(1);
    match group.strategy {
        Strategy::Broadcast => Ok(Pick {
            doctors: candidates.into_iter().map(|(_, d)| d).collect(),
            deadline_ms,
            rr_cursor: None,
        }),
        Strategy::LeastLoaded => {
            let mut best: Option<(i64, usize, String)> = None;
            for (pos, d) in candidates {
                let load = store::load(&st.core.db, &d, a.window_start, a.window_end).await?;
                if best.as_ref().is_none_or(|(l, p, _)| (load, pos) < (*l, *p)) {
                    best = Some((load, pos, d));
                }
            }
            Ok(Pick {
                doctors: best.map(|(_, _, d)| vec![d]).unwrap_or_default(),
                deadline_ms,
                rr_cursor: None,
            })
        }
        Strategy::RoundRobin => {
            // Round robin: the first available member at or after the stored cursor.
            let fresh = store::group(&st.core.db, &group.id).await?;
            let cursor = fresh
                .map_or(group.rr_cursor, |(g, _)| g.rr_cursor)
                .rem_euclid(n);
            let chosen = candidates
                .iter()
                .min_by_key(|(pos, _)| (i64::try_from(*pos).unwrap_or(0) - cursor).rem_euclid(n))
                .cloned();
            Ok(match chosen {
                Some((pos, d)) => Pick {
                    doctors: vec![d],
                    deadline_ms,
                    rr_cursor: Some((i64::try_from(pos).unwrap_or(0) + 1).rem_euclid(n)),
                },
                None => Pick {
                    doctors: Vec::new(),
                    deadline_ms,
                    rr_cursor: None,
                },
            })
        }
    }
}
