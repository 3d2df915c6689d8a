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

use super::router::RouterMsg;
use super::{Core, time_out};
use crate::store;
use carehub_runtime::db::now_ms;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::time::Duration;

pub enum DoctorMsg {
    Track {
        appointment_id: String,
        deadline: i64,
    },
    Fire(String),
}

pub struct DoctorActor;

pub struct DoctorState {
    core: Core,
    doctor_id: String,
    router: ActorRef<RouterMsg>,
}

fn arm(me: &ActorRef<DoctorMsg>, appointment_id: String, deadline: i64) {
    let wait = Duration::from_millis(u64::try_from(deadline - now_ms()).unwrap_or(0));
    me.send_after(wait, move || DoctorMsg::Fire(appointment_id));
}

impl Actor for DoctorActor {
    type Msg = DoctorMsg;
    type State = DoctorState;
    type Arguments = (Core, String, ActorRef<RouterMsg>);

    async fn pre_start(
        &self,
        me: ActorRef<DoctorMsg>,
        (core, doctor_id, router): (Core, String, ActorRef<RouterMsg>),
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
        me: ActorRef<DoctorMsg>,
        msg: DoctorMsg,
        st: &mut DoctorState,
    ) -> Result<(), ActorProcessingErr> {
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
                    let _ = st.router.cast(RouterMsg::Route(appointment_id));
                }
            }
        }
        Ok(())
    }
}
