//! The router actor: routes every open request, escalates, and sweeps deadlines.
//!
//! Messages:
//! - `Route(appointment_id)`: if the request waits for a doctor (status `requested`, not in
//!   the admin queue), offer it to the next doctor(s) its target allows; with nobody left,
//!   put it in the admin queue. Idempotent: routing an appointment that is not waiting does
//!   nothing.
//! - `Sweep`: time out offers past their deadline and expire requests past their final
//!   deadline (a safety net under the doctor actors' timers; runs every
//!   `CAREHUB_DEADLINE_SWEEP`).
//! - `GroupChanged(group_id)`: a group was edited; its actor reloads.
//!
//! Children (group and doctor actors) are linked: when one fails it is dropped and
//! re-spawned on next use, rebuilding its state from the database (policy: restart on
//! demand; the router itself never stops because of a child).

use super::doctor::{DoctorActor, DoctorMsg};
use super::group::{GroupActor, GroupMsg, Pick};
use super::mailbox::{Envelope, Kind};
use super::strategy::{self, Member, Snapshot};
use super::{Core, available, expire, time_out};
use crate::events;
use crate::store::{self, AppointmentRow};
use carehub_nats::appointment::{AppointmentEventKind, AppointmentStatus, OfferStatus};
use carehub_runtime::db::{StoreError, now_ms};
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use std::collections::HashMap;
use std::time::Duration;

pub(crate) enum RouterMsg {
    Route(String),
    Sweep,
    GroupChanged(String),
}

impl Kind for RouterMsg {
    const KIND: &'static str = "router";
}

/// Adopts the open requests of instances whose lease ran out and gets them moving again.
async fn adopt(
    me: &ActorRef<Envelope<RouterMsg>>,
    st: &mut RouterState,
) -> Result<(), ActorProcessingErr> {
    let now = now_ms();
    let lease = i64::try_from(st.core.cfg.lease.as_millis()).unwrap_or(10_000);
    store::renew_lease(&st.core.db, &st.core.instance, now + lease, now).await?;
    let adopted = store::adopt_orphans(&st.core.db, &st.core.instance, now).await?;
    if now - st.purged_at >= PURGE_EVERY_MS {
        st.purged_at = now;
        crate::idempotency::purge_expired(&st.core.db, now).await?;
    }
    if !adopted.is_empty() {
        tracing::warn!(
            count = adopted.len(),
            "adopted the open requests of an instance that stopped"
        );
    }
    for id in adopted {
        for o in store::offers_of(&st.core.db, &id).await? {
            if o.status == OfferStatus::Pending {
                let d = doctor_actor(me, st, &o.doctor_id).await?;
                let _ = d.cast(Envelope::from(DoctorMsg::Track {
                    appointment_id: id.clone(),
                    deadline: o.deadline,
                }));
            }
        }
    }
    Ok(())
}

pub(crate) struct Router;

pub(crate) struct RouterState {
    core: Core,
    groups: HashMap<String, ActorRef<Envelope<GroupMsg>>>,
    doctors: HashMap<String, ActorRef<Envelope<DoctorMsg>>>,
    /// When expired idempotency keys were last deleted.
    purged_at: i64,
}

/// How often the sweep deletes expired idempotency keys.
const PURGE_EVERY_MS: i64 = 60_000;

const PICK_TIMEOUT: Duration = Duration::from_secs(10);

impl Actor for Router {
    type Msg = Envelope<RouterMsg>;
    type State = RouterState;
    type Arguments = Core;

    async fn pre_start(
        &self,
        me: ActorRef<Envelope<RouterMsg>>,
        core: Core,
    ) -> Result<RouterState, ActorProcessingErr> {
        me.send_interval(core.cfg.sweep_every, || RouterMsg::Sweep.into());
        let mut st = RouterState {
            core,
            groups: HashMap::new(),
            doctors: HashMap::new(),
            purged_at: 0,
        };
        // Rebuild: every doctor with pending offers gets its timers back; every request that
        // waits for a doctor is routed again.
        for a in store::open_appointments(&st.core.db).await? {
            for o in store::offers_of(&st.core.db, &a.id).await? {
                if o.status == OfferStatus::Pending {
                    doctor_actor(&me, &mut st, &o.doctor_id).await?;
                }
            }
            if a.status == AppointmentStatus::Requested && !a.in_admin_queue {
                let _ = me.cast(RouterMsg::Route(a.id).into());
            }
        }
        Ok(st)
    }

    async fn handle(
        &self,
        me: ActorRef<Envelope<RouterMsg>>,
        msg: Envelope<RouterMsg>,
        st: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        let (msg, _queued) = msg.open();
        let result = match msg {
            RouterMsg::Route(id) => route(&me, st, &id).await,
            RouterMsg::Sweep => sweep(&me, st).await,
            RouterMsg::GroupChanged(id) => {
                if let Some(g) = st.groups.get(&id) {
                    let _ = g.cast(GroupMsg::Reload.into());
                }
                Ok(())
            }
        };
        // A storage hiccup must not kill routing: the next sweep or route retries.
        if let Err(e) = result {
            tracing::warn!(error = %e, "routing step failed; will retry");
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _me: ActorRef<Envelope<RouterMsg>>,
        st: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        // Let the other instances adopt this one's requests now rather than after the lease.
        if let Err(e) = store::release_lease(&st.core.db, &st.core.instance).await {
            tracing::warn!(error = %e, "could not release the routing lease");
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _me: ActorRef<Envelope<RouterMsg>>,
        evt: SupervisionEvent,
        st: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(cell, _)
        | SupervisionEvent::ActorTerminated(cell, _, _) = &evt
        {
            let id = cell.get_id();
            st.groups.retain(|_, a| a.get_id() != id);
            st.doctors.retain(|_, a| a.get_id() != id);
            if matches!(evt, SupervisionEvent::ActorFailed(..)) {
                tracing::warn!(actor = ?cell.get_name(), "routing child failed; it restarts on next use from the database");
            }
        }
        Ok(())
    }
}

async fn doctor_actor(
    me: &ActorRef<Envelope<RouterMsg>>,
    st: &mut RouterState,
    doctor_id: &str,
) -> Result<ActorRef<Envelope<DoctorMsg>>, ActorProcessingErr> {
    if let Some(a) = st.doctors.get(doctor_id) {
        return Ok(a.clone());
    }
    let (a, _) = Actor::spawn_linked(
        None,
        DoctorActor,
        (st.core.clone(), doctor_id.to_owned(), me.clone()),
        me.get_cell(),
    )
    .await?;
    st.doctors.insert(doctor_id.to_owned(), a.clone());
    Ok(a)
}

async fn group_actor(
    me: &ActorRef<Envelope<RouterMsg>>,
    st: &mut RouterState,
    group_id: &str,
) -> Result<ActorRef<Envelope<GroupMsg>>, ActorProcessingErr> {
    if let Some(a) = st.groups.get(group_id) {
        return Ok(a.clone());
    }
    let (a, _) = Actor::spawn_linked(
        None,
        GroupActor,
        (st.core.clone(), group_id.to_owned()),
        me.get_cell(),
    )
    .await?;
    st.groups.insert(group_id.to_owned(), a.clone());
    Ok(a)
}

async fn pick_from_group(
    me: &ActorRef<Envelope<RouterMsg>>,
    st: &mut RouterState,
    group_id: &str,
    a: &AppointmentRow,
    tried: Vec<String>,
) -> Result<Pick, ActorProcessingErr> {
    let g = group_actor(me, st, group_id).await?;
    let appointment = Box::new(a.clone());
    match g
        .call(
            |reply| {
                Envelope::from(GroupMsg::Pick {
                    appointment,
                    tried,
                    reply,
                })
            },
            Some(PICK_TIMEOUT),
        )
        .await?
    {
        ractor::rpc::CallResult::Success(Ok(p)) => Ok(p),
        ractor::rpc::CallResult::Success(Err(e)) => Err(e.into()),
        _ => Err("group actor did not answer".into()),
    }
}

/// Least-loaded over approved doctors of a specialty (no routing group): ties by id.
async fn pick_specialty(
    core: &Core,
    specialty: &str,
    a: &AppointmentRow,
    tried: &[String],
) -> Result<Pick, StoreError> {
    let mut snapshot = Snapshot::default();
    for d in store::doctors_of_specialty(&core.db, specialty).await? {
        let tried = tried.contains(&d.doctor_id);
        let available = !tried && available(core, &d, a.window_start, a.window_end).await?;
        let load = if available {
            store::load(&core.db, &d.doctor_id, a.window_start, a.window_end).await?
        } else {
            0
        };
        snapshot.members.push(Member {
            id: d.doctor_id,
            tried,
            available,
            load,
        });
    }
    Ok(Pick {
        doctors: strategy::least_loaded(&snapshot).doctors,
        deadline_ms: ms(core.cfg.offer_deadline),
        rr_cursor: None,
    })
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

async fn route(
    me: &ActorRef<Envelope<RouterMsg>>,
    st: &mut RouterState,
    id: &str,
) -> Result<(), ActorProcessingErr> {
    let Some(a) = store::appointment(&st.core.db, id).await? else {
        return Ok(());
    };
    if a.status != AppointmentStatus::Requested || a.in_admin_queue {
        return Ok(());
    }
    let tried = store::tried_doctors(&st.core.db, id).await?;
    let pick = match a.target_kind.as_str() {
        "group" => match a.group_id.clone() {
            Some(g) => pick_from_group(me, st, &g, &a, tried).await?,
            None => Pick::default(),
        },
        "specialty" => {
            let spec = a.specialty.clone().unwrap_or_default();
            match store::group_of_specialty(&st.core.db, &spec).await? {
                Some(g) => pick_from_group(me, st, &g, &a, tried).await?,
                None => pick_specialty(&st.core, &spec, &a, &tried).await?,
            }
        }
        _ => {
            let mut doctors = Vec::new();
            if let Some(d) = a.doctor_id.as_ref().filter(|d| !tried.contains(d))
                && let Some(row) = store::doctor(&st.core.db, d).await?
                && available(&st.core, &row, a.window_start, a.window_end).await?
            {
                doctors.push(d.clone());
            }
            Pick {
                doctors,
                deadline_ms: ms(st.core.cfg.offer_deadline),
                rr_cursor: None,
            }
        }
    };
    let now = now_ms();
    if pick.doctors.is_empty() {
        let escalated = store::escalate(&st.core.db, id, now, &|row| {
            events::one(
                AppointmentEventKind::Escalated,
                row,
                None,
                None,
                Some("no doctor could take the request; it waits for an administrator"),
                vec![row.patient_id.clone()],
            )
        })
        .await?;
        if escalated.is_some() {
            tracing::info!(appointment_id = %id, "request escalated to the admin queue");
            st.core.relay.wake();
        }
        return Ok(());
    }
    // An offer never outlives the request itself.
    let deadline = (now + pick.deadline_ms).min(a.final_deadline);
    let rr = match (&a.group_id, pick.rr_cursor) {
        (Some(g), Some(c)) => Some((g.as_str(), c)),
        _ => None,
    };
    let doctors = pick.doctors.clone();
    let offers = store::NewOffers {
        appointment_id: id,
        expected_version: a.version,
        doctors: &pick.doctors,
        deadline,
        now,
        rr_cursor: rr,
    };
    let created = store::create_offers(&st.core.db, &offers, &move |row| {
        let mut out = Vec::new();
        for d in &doctors {
            out.extend(events::one(
                AppointmentEventKind::Offered,
                row,
                Some(d),
                None,
                None,
                vec![d.clone()],
            )?);
        }
        Ok(out)
    })
    .await?;
    if created.is_some() {
        st.core.relay.wake();
        for d in &pick.doctors {
            let actor = doctor_actor(me, st, d).await?;
            let _ = actor.cast(Envelope::from(DoctorMsg::Track {
                appointment_id: id.to_owned(),
                deadline,
            }));
        }
        tracing::info!(appointment_id = %id, doctors = pick.doctors.len(), "offered");
    }
    Ok(())
}

async fn sweep(
    me: &ActorRef<Envelope<RouterMsg>>,
    st: &mut RouterState,
) -> Result<(), ActorProcessingErr> {
    adopt(me, st).await?;
    let now = now_ms();
    let owner = st.core.instance.clone();
    for (appointment_id, doctor_id) in store::due_offers(&st.core.db, &owner, now).await? {
        if time_out(&st.core, &appointment_id, &doctor_id)
            .await?
            .is_some()
        {
            let _ = me.cast(RouterMsg::Route(appointment_id).into());
        }
    }
    // Requests that wait for routing: a decline answered by another instance, a lost message.
    for id in store::owned_waiting(&st.core.db, &owner).await? {
        let _ = me.cast(RouterMsg::Route(id).into());
    }
    for id in store::due_expiries(&st.core.db, &owner, now).await? {
        if expire(&st.core, &id).await?.is_some() {
            tracing::info!(appointment_id = %id, "request expired");
        }
    }
    Ok(())
}
