//! One actor per doctor with pending offers: holds their deadlines as timers.
//!
//! Messages:
//! - `Track { appointment_id, deadline }`: arm a timer for a new offer.
//! - `Fire(appointment_id)`: the deadline passed; time the offer out (compare-and-set, so a
//!   duplicate fire or the router's sweep cannot time it out twice) and ask the router to move
//!   the request on.
//!
//! `pre_start` re-arms a timer for every pending offer of the doctor from the database, so a
//! restart loses no deadline.

use super::mailbox::{Envelope, Kind};
use super::router::RouterMsg;
use super::{Core, time_out};
use crate::store;
use carehub_runtime::db::now_ms;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::time::Duration;

pub(crate) enum DoctorMsg {
    Track {
        appointment_id: String,
        deadline: i64,
    },
    Fire(String),
}

impl Kind for DoctorMsg {
    const KIND: &'static str = "doctor";
}

pub(crate) struct DoctorActor;

pub(crate) struct DoctorState {
    core: Core,
    doctor_id: String,
    router: ActorRef<Envelope<RouterMsg>>,
}

fn arm(me: &ActorRef<Envelope<DoctorMsg>>, appointment_id: String, deadline: i64) {
    let wait = Duration::from_millis(u64::try_from(deadline - now_ms()).unwrap_or(0));
    me.send_after(wait, move || DoctorMsg::Fire(appointment_id).into());
}

impl Actor for DoctorActor {
    type Msg = Envelope<DoctorMsg>;
    type State = DoctorState;
    type Arguments = (Core, String, ActorRef<Envelope<RouterMsg>>);

    async fn pre_start(
        &self,
        me: ActorRef<Envelope<DoctorMsg>>,
        (core, doctor_id, router): (Core, String, ActorRef<Envelope<RouterMsg>>),
    ) -> Result<DoctorState, ActorProcessingErr> {
        for offer in store::pending_offers_for(&core.db, &doctor_id).await? {
            arm(&me, offer.appointment_id, offer.deadline);
        }
        Ok(DoctorState {
            core,
            doctor_id,
            router,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<Envelope<DoctorMsg>>,
        msg: Envelope<DoctorMsg>,
        st: &mut DoctorState,
    ) -> Result<(), ActorProcessingErr> {
        let (msg, _queued) = msg.open();
        match msg {
            DoctorMsg::Track {
                appointment_id,
                deadline,
            } => arm(&me, appointment_id, deadline),
            DoctorMsg::Fire(appointment_id) => {
                if time_out(&st.core, &appointment_id, &st.doctor_id)
                    .await?
                    .is_some()
                {
                    tracing::info!(appointment_id = %appointment_id, doctor_id = %st.doctor_id, "offer timed out");
                    let _ = st.router.cast(RouterMsg::Route(appointment_id).into());
                }
            }
        }
        Ok(())
    }
}
