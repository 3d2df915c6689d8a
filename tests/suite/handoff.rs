//! Stopping one of two instances of a service while requests flow: the stopping instance hands
//! its endpoint over (see `MicroService::shutdown`), so every request is answered exactly once,
//! by one instance or the other, and none is lost in the moment it unsubscribes. Runs under the
//! shipped NATS permissions: the instances are the `auth` user, the caller the `gateway` user.

use crate::support::nats::NatsServer;
use carehub_bus::{Bus, BusConfig, BusError, MicroService, ServiceSpec};
use carehub_nats::auth::Verify;
use carehub_nats::{CallContext, Principal, Role, UserStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Callers sending back to back, so requests are always on their way to both instances.
const CALLERS: usize = 24;

async fn bus_as(server: &NatsServer, user: &str, name: &str) -> Bus {
    let password = server
        .credentials()
        .and_then(|c| c.password(user))
        .expect("a carehub NATS user")
        .to_owned();
    let cfg = BusConfig {
        url: server.url(),
        name: format!("carehub-{name}"),
        user: Some(user.to_owned()),
        password: Some(password),
        inbox_prefix: Some(format!("_INBOX_{user}")),
    };
    Bus::connect(&cfg, Duration::from_secs(10))
        .await
        .expect("connect")
}

/// An `auth` instance whose `verify` answers with its own tag as the user id and the token as
/// the token id, after a little work.
async fn instance(server: &NatsServer, tag: &'static str) -> MicroService {
    let bus = bus_as(server, "auth", &format!("auth-{tag}")).await;
    let spec = ServiceSpec {
        name: "auth",
        version: "0.0.0",
        description: "handoff test instance",
    };
    let micro = MicroService::start(&bus, spec, 64).await.expect("start");
    micro
        .serve(
            tag,
            |tag: &'static str, _ctx: CallContext, r: Verify| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok(Principal {
                    user_id: tag.to_owned(),
                    role: Role::Patient,
                    status: UserStatus::Active,
                    jti: r.token,
                    session_id: String::new(),
                    expires_at: 0,
                })
            },
        )
        .await
        .expect("serve verify");
    micro
}

#[derive(Default)]
struct Tally {
    answered_by: Vec<String>,
    failures: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_instance_hands_its_requests_over_without_losing_one() {
    let server = NatsServer::start_secured().await;
    let a = instance(&server, "a").await;
    let b = instance(&server, "b").await;
    let caller = bus_as(&server, "gateway", "gateway").await;

    let tally = Arc::new(Mutex::new(Tally::default()));
    let done = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for c in 0..CALLERS {
        let (bus, tally, done) = (caller.clone(), tally.clone(), done.clone());
        callers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                n += 1;
                let token = format!("{c}-{n}");
                let req = Verify {
                    token: token.clone(),
                };
                let answer: Result<Principal, BusError> = bus
                    .request_with_timeout(&CallContext::internal(), &req, Duration::from_secs(3))
                    .await;
                let mut t = tally.lock().unwrap();
                match answer {
                    Ok(p) if p.jti == token => t.answered_by.push(p.user_id),
                    Ok(p) => t.failures.push(format!("{token} answered for {}", p.jti)),
                    Err(e) => t.failures.push(format!("{token}: {e}")),
                }
            }
        }));
    }

    // Both instances busy, then one stops while the callers keep going.
    let both_busy = |t: &Tally| {
        t.answered_by.iter().filter(|w| *w == "a").count() >= 200
            && t.answered_by.iter().filter(|w| *w == "b").count() >= 200
    };
    crate::support::wait::until("both instances answering", Duration::from_secs(30), || {
        let ready = both_busy(&tally.lock().unwrap());
        async move { ready.then_some(()) }
    })
    .await;
    a.shutdown(Duration::from_secs(8)).await;
    // Its last replies were sent before `shutdown` returned; let them reach the callers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_stop = tally.lock().unwrap().answered_by.len();
    crate::support::wait::until(
        "more answers after the stop",
        Duration::from_secs(30),
        || {
            let more = tally.lock().unwrap().answered_by.len() >= after_stop + 500;
            async move { more.then_some(()) }
        },
    )
    .await;
    done.store(true, Ordering::Relaxed);
    for c in callers {
        c.await.unwrap();
    }

    let t = std::mem::take(&mut *tally.lock().unwrap());
    assert!(
        t.failures.is_empty(),
        "{} of {} calls failed: {:?}",
        t.failures.len(),
        t.failures.len() + t.answered_by.len(),
        &t.failures[..t.failures.len().min(10)]
    );
    assert!(
        t.answered_by[after_stop..].iter().all(|w| w == "b"),
        "only the running instance answers once the other has stopped"
    );
    b.shutdown(Duration::from_secs(8)).await;
}
