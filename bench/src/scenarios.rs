//! One function per measurement. Each builds the request it repeats and hands it to the
//! shared [`Load`] runner, or (revocation, hash time) times a short sequence itself.
//!
//! Accounts: workers `0..concurrency` log in as the account with their index; the two accounts
//! after them hold the `/api/me` token and the revocation rounds' tokens.

use super::cluster::Cluster;
use super::cpu::Procs;
use super::load::{Load, Op, Outcome, op};
use super::{PASSWORD, log_in, login_body};
use anyhow::Context as _;
use carehub_bus::{Bus, BusConfig};
use carehub_nats::CallContext;
use carehub_nats::auth::{Me, Verify};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the revocation check asks gateway B.
const POLL_EVERY: Duration = Duration::from_millis(1);
/// A revocation round that takes longer than this counts as missed.
const REVOCATION_DEADLINE: Duration = Duration::from_secs(5);

/// What every scenario shares: the system, a keep-alive HTTP client, the CPU probe, the
/// configured load and a signed-in token.
pub(crate) struct Bench<'a> {
    pub(crate) cluster: &'a Cluster,
    pub(crate) http: reqwest::Client,
    pub(crate) procs: Procs,
    /// Closed loop at `--concurrency`.
    pub(crate) load: Load,
    /// The `/api/me` latency probe used with and without the login storm.
    pub(crate) probe: Load,
    token: String,
    revocation_account: usize,
}

impl<'a> Bench<'a> {
    /// Signs in the `/api/me` account through gateway A.
    ///
    /// # Errors
    /// When the HTTP client cannot be built or the login fails.
    pub(crate) async fn new(cluster: &'a Cluster, load: Load, probe: Load) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client")?;
        let me_account = load.concurrency;
        let token = sign_in(&http, &cluster.gateway_a, me_account).await?;
        Ok(Self {
            cluster,
            http,
            procs: cluster.procs(),
            load,
            probe,
            token,
            revocation_account: me_account + 1,
        })
    }

    /// The number of accounts [`Cluster::start`] must create for this layout.
    pub(crate) fn accounts_needed(concurrency: usize) -> usize {
        concurrency + 2
    }

    fn get(&self, url: String, token: Option<&str>) -> Op {
        let http = self.http.clone();
        let auth = token.map(|t| format!("Bearer {t}"));
        op(move |_| {
            let mut req = http.get(&url);
            if let Some(a) = &auth {
                req = req.header(AUTHORIZATION, a);
            }
            async move { success(req.send().await?).await }
        })
    }

    fn login_op(&self) -> Op {
        let bodies: Arc<Vec<String>> = Arc::new(
            (0..self.load.concurrency)
                .map(|i| login_body(&Cluster::email(i)).to_string())
                .collect(),
        );
        let http = self.http.clone();
        let url = format!("{}/api/auth/login", self.cluster.gateway_a);
        op(move |worker| {
            let body = bodies[worker % bodies.len()].clone();
            let req = http
                .post(&url)
                .header(CONTENT_TYPE, "application/json")
                .body(body);
            async move { success(req.send().await?).await }
        })
    }

    fn me_op(&self, base: &str) -> Op {
        self.get(format!("{base}/api/me"), Some(&self.token))
    }
}

/// `GET /healthz` on gateway A: the HTTP stack alone, no NATS.
pub(crate) async fn healthz(b: &Bench<'_>) -> anyhow::Result<Outcome> {
    let url = format!("{}/healthz", b.cluster.gateway_a);
    b.load.run(&b.procs, &b.get(url, None)).await
}

/// Authenticated `GET /api/me` on `base`: token check (cached or not) plus one auth call.
pub(crate) async fn me(b: &Bench<'_>, base: &str) -> anyhow::Result<Outcome> {
    b.load.run(&b.procs, &b.me_op(base)).await
}

/// `POST /api/auth/login`, each worker with its own account.
pub(crate) async fn login(b: &Bench<'_>) -> anyhow::Result<Outcome> {
    b.load.run(&b.procs, &b.login_op()).await
}

/// `/api/me` on gateway A and the same `Me {}` sent straight over NATS, both by one client
/// at a time, so the difference is the gateway's own cost and not queueing.
pub(crate) async fn me_one_client(b: &Bench<'_>) -> anyhow::Result<(Outcome, Outcome)> {
    let one = Load {
        concurrency: 1,
        pace: None,
        ..b.load
    };
    let http = one.run(&b.procs, &b.me_op(&b.cluster.gateway_a)).await?;

    let bus = Bus::connect(
        &BusConfig::new(&b.cluster.nats_url, "carehub-bench"),
        Duration::from_secs(10),
    )
    .await
    .context("connecting the benchmark to NATS")?;
    let principal = bus
        .request(
            &CallContext::internal(),
            &Verify {
                token: b.token.clone(),
            },
        )
        .await
        .context("verifying the benchmark token over NATS")?;
    let direct = op(move |_| {
        let bus = bus.clone();
        // As the gateway does: a fresh request id and the verified principal on every call.
        let ctx = CallContext {
            principal: Some(principal.clone()),
            ..CallContext::internal()
        };
        async move {
            bus.request(&ctx, &Me {}).await?;
            Ok(())
        }
    });
    let nats = one.run(&b.procs, &direct).await?;
    Ok((http, nats))
}

/// Stale-token window: gateway B holds a token in its cache, the token is logged out through
/// gateway A, and B is asked every [`POLL_EVERY`] until it answers 401. Each delay is counted
/// from the moment A acknowledged the logout.
pub(crate) async fn revocation(
    b: &Bench<'_>,
    rounds: usize,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let (a, gw_b) = (&b.cluster.gateway_a, &b.cluster.gateway_b);
    let mut delays = Vec::with_capacity(rounds);
    let mut missed = 0;
    for round in 0..rounds {
        let token = sign_in(&b.http, a, b.revocation_account).await?;
        for base in [a, gw_b] {
            let status = me_status(&b.http, base, &token).await?;
            anyhow::ensure!(
                status == 200,
                "round {round}: {base}/api/me answered {status} before logout"
            );
        }
        let r = b
            .http
            .post(format!("{a}/api/auth/logout"))
            .bearer_auth(&token)
            .send()
            .await?;
        success(r)
            .await
            .with_context(|| format!("round {round}: logout"))?;
        let acknowledged = Instant::now();
        loop {
            if me_status(&b.http, gw_b, &token).await? == 401 {
                delays.push(acknowledged.elapsed());
                break;
            }
            if acknowledged.elapsed() > REVOCATION_DEADLINE {
                missed += 1;
                break;
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
    Ok((delays, missed))
}

/// Argon2 timings taken in this process while the system idles, with the auth service's
/// parameters and on blocking threads as it runs them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HashTimes {
    /// Median time of one check, alone on the machine. A login does exactly one check.
    pub(crate) single: Duration,
    /// Checks per second with `permits` of them running at once: the best of
    /// [`PARALLEL_ROUNDS`], since other work on a shared machine only ever lowers it.
    pub(crate) parallel_per_sec: f64,
    /// CPU time per check while they ran in parallel.
    pub(crate) parallel_cpu: Duration,
}

const PARALLEL_ROUNDS: usize = 3;

/// Times `samples` single argon2 checks, then rounds of `permits` × `samples` parallel ones.
pub(crate) async fn hash_times(
    procs: &Procs,
    samples: usize,
    permits: usize,
) -> anyhow::Result<HashTimes> {
    let wire = |e: carehub_nats::WireError| anyhow::anyhow!(e.message);
    let samples = samples.max(1);
    let hasher = carehub_auth::password::Hasher::new(permits)
        .await
        .map_err(wire)?;
    let phc: Arc<str> = hasher.hash(PASSWORD).await.map_err(wire)?.into();
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        anyhow::ensure!(
            hasher.verify(PASSWORD, Some(&phc)).await,
            "argon2 rejected its own hash"
        );
        times.push(started.elapsed());
    }
    times.sort();

    let mut best = 0.0_f64;
    let before = procs.sample()?;
    for _ in 0..PARALLEL_ROUNDS {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..permits {
            let (hasher, phc) = (hasher.clone(), Arc::clone(&phc));
            tasks.spawn(async move {
                for _ in 0..samples {
                    hasher.verify(PASSWORD, Some(&phc)).await;
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.context("an argon2 timing task panicked")?;
        }
        best = best.max((samples * permits) as f64 / started.elapsed().as_secs_f64());
    }
    let checks = u32::try_from(samples * permits * PARALLEL_ROUNDS).unwrap_or(u32::MAX);
    Ok(HashTimes {
        single: times[times.len() / 2],
        parallel_per_sec: best,
        parallel_cpu: procs.sample()?.since(&before, procs).bench / checks,
    })
}

/// The paced `/api/me` probe on gateway A, alone.
pub(crate) async fn me_probe(b: &Bench<'_>) -> anyhow::Result<Outcome> {
    b.probe.run(&b.procs, &b.me_op(&b.cluster.gateway_a)).await
}

/// The paced `/api/me` probe while `--concurrency` clients log in as fast as they can.
/// Returns (logins, probe).
pub(crate) async fn storm(b: &Bench<'_>) -> anyhow::Result<(Outcome, Outcome)> {
    let (login, me) = (b.login_op(), b.me_op(&b.cluster.gateway_a));
    let (logins, probe) = tokio::join!(b.load.run(&b.procs, &login), b.probe.run(&b.procs, &me));
    Ok((logins?, probe?))
}

/// Logs account `i` in through `base` and returns its access token.
async fn sign_in(http: &reqwest::Client, base: &str, account: usize) -> anyhow::Result<String> {
    Ok(log_in(http, base, &Cluster::email(account))
        .await?
        .access_token)
}

async fn me_status(http: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<u16> {
    let r = http
        .get(format!("{base}/api/me"))
        .bearer_auth(token)
        .send()
        .await?;
    let status = r.status().as_u16();
    r.bytes().await?;
    Ok(status)
}

/// Reads the whole body (so the connection is reused) and fails on a non-2xx status.
async fn success(r: reqwest::Response) -> anyhow::Result<()> {
    let status = r.status();
    r.bytes().await?;
    anyhow::ensure!(status.is_success(), "HTTP {status}");
    Ok(())
}
