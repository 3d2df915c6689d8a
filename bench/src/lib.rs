//! `carehub-bench`: starts its own carehub as child processes (so their CPU time can be read),
//! drives it from this process, and prints a table judged against the targets (see
//! docs/BENCHMARKS.md).
//!
//! Map:
//! - `cluster` starts and stops the children: the [`cluster::Rig`] every benchmark runs on (a
//!   data directory, the nats-server through `carehub-natsd`, `carehub serve` children) and the
//!   login benchmark's cluster;
//! - `load` the load generator every scenario shares;
//! - `cpu` reads process CPU times;
//! - `scenarios` one function per measurement;
//! - `report` the figures, targets and table;
//! - `booking` the appointment booking benchmark (`carehub-bench booking`), with its own
//!   system under test;
//! - `hub` the hub benchmark (`carehub-bench hub`), which reuses it;
//! - `read` the hot reads against their floors (`carehub-bench read`), which reuses both.
//!
//! `carehub_executable` finds the `carehub` binary that the children run.
//!
//! A crate of its own so that the shipped `carehub` carries no load generator, no WebRTC stack
//! and no histogram code.

mod booking;
mod cluster;
mod cpu;
mod hub;
mod load;
mod read;
mod report;
mod scenarios;

use anyhow::Context as _;
use carehub_nats::auth::Session;
use cluster::Cluster;
use load::Load;
use report::{AddedLatency, LoginTheory, Machine, Report, RevocationDelay, Row, Settings, Storm};
use scenarios::Bench;
use std::path::PathBuf;
use std::time::Duration;

/// Password of every benchmark account.
const PASSWORD: &str = "bench password, not a secret";

/// The body of a login as `email`, asking for the refresh token in the body.
fn login_body(email: &str) -> serde_json::Value {
    serde_json::json!({ "email": email, "password": PASSWORD, "refresh_token_in": "body" })
}

/// Signs `email` in through the gateway at `base`.
///
/// # Errors
/// When the login does not answer 2xx with a session.
async fn log_in(http: &reqwest::Client, base: &str, email: &str) -> anyhow::Result<Session> {
    let r = http
        .post(format!("{base}/api/auth/login"))
        .json(&login_body(email))
        .send()
        .await
        .with_context(|| format!("logging in {email}"))?;
    let status = r.status();
    anyhow::ensure!(status.is_success(), "logging in {email}: HTTP {status}");
    r.json().await.context("decoding the login answer")
}

/// The `carehub` binary the benchmarks start: `CAREHUB_BIN` when set, else the `carehub` that
/// cargo built beside this executable (`cargo build --release -p carehub -p carehub-bench`).
///
/// # Errors
/// When neither exists.
pub(crate) fn carehub_executable() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("CAREHUB_BIN") {
        return Ok(PathBuf::from(path));
    }
    let me = std::env::current_exe().context("locating the carehub-bench executable")?;
    let beside = me.with_file_name("carehub");
    anyhow::ensure!(
        beside.is_file(),
        "no carehub executable at {}: build it (`cargo build --release --bin carehub`) or set CAREHUB_BIN",
        beside.display()
    );
    Ok(beside)
}

/// Argon2 timings whose median is the single-hash time (and rounds of parallel ones).
const HASH_SAMPLES: usize = 9;
/// Workers of the paced `/api/me` probe run alongside the login storm.
const PROBE_CLIENTS: usize = 4;

/// Options of `carehub-bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Concurrent clients of each throughput scenario (and of the login storm).
    #[arg(long, default_value_t = 16)]
    pub(crate) concurrency: usize,
    /// Measured seconds per scenario.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) duration: f64,
    /// Warm-up seconds before each measured window.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) warmup: f64,
    /// Logout rounds of the revocation-delay measurement.
    #[arg(long, default_value_t = 20)]
    pub(crate) revocation_rounds: usize,
    /// Requests per second of the `/api/me` latency probe (with and without the login storm).
    #[arg(long, default_value_t = 400)]
    pub(crate) probe_rate: u32,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Exit with an error when a target is missed.
    #[arg(long)]
    pub(crate) strict: bool,
    /// Another benchmark instead of the gateway and auth one.
    #[command(subcommand)]
    pub(crate) scenario: Option<Scenario>,
}

/// Benchmarks with their own system under test.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Scenario {
    /// Patients racing to book one auto-accept doctor's free slots, and request-to-offer
    /// latency, on SQLite and PostgreSQL.
    Booking(booking::BookingArgs),
    /// The hub: many sockets on one node and their memory, a broadcast to all of them,
    /// chat latency on one node and across two, the gateway's `/ws` cost, call setup time.
    Hub(hub::HubArgs),
    /// The load client process of `carehub-bench hub` (reads its plan on stdin).
    #[command(hide = true)]
    HubClient,
    /// Each hot read of a patient through the gateway against its floor: the same SQL behind
    /// a bare axum -> NATS -> sqlx handler, on PostgreSQL.
    Read(read::ReadArgs),
    /// The floor process of `carehub-bench read` (reads its plan on stdin).
    #[command(hide = true)]
    ReadFloor,
}

/// Runs every scenario against a freshly started system and prints the report.
///
/// # Errors
/// When the system cannot be started, a scenario fails outright, the JSON file cannot be
/// written, on Ctrl-C, or (with `--strict`) when a target is missed.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.scenario {
        Some(Scenario::Booking(booking)) => return booking::run(booking).await,
        Some(Scenario::Hub(hub)) => return hub::run(hub).await,
        Some(Scenario::HubClient) => return hub::client::run().await,
        Some(Scenario::Read(read)) => return read::run(read).await,
        Some(Scenario::ReadFloor) => return read::floor::run().await,
        None => {}
    }
    let secs = |v: f64, name: &str| {
        Duration::try_from_secs_f64(v)
            .ok()
            .filter(|d| !d.is_zero() || name == "--warmup")
            .with_context(|| format!("{name} must be a positive number of seconds"))
    };
    let load = Load::closed(
        args.concurrency,
        secs(args.warmup, "--warmup")?,
        secs(args.duration, "--duration")?,
    );
    let signal = carehub_runtime::shutdown::on_signal();
    let report = tokio::select! {
        r = Box::pin(measure(load, args.probe_rate, args.revocation_rounds)) => r?,
        () = signal.cancelled() => anyhow::bail!("interrupted; the benchmark's processes were stopped"),
    };
    print!("{report}");
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    let missed = report::missed(&report.targets);
    if args.strict && missed > 0 {
        anyhow::bail!("{missed} of {} targets missed", report.targets.len());
    }
    Ok(())
}

async fn measure(load: Load, probe_rate: u32, revocation_rounds: usize) -> anyhow::Result<Report> {
    let mut machine = Machine::this();
    tracing::info!("starting nats-server, auth and three gateways as child processes");
    let cluster = Cluster::start(Bench::accounts_needed(load.concurrency)).await?;
    let probe = load.paced(PROBE_CLIENTS, probe_rate);
    let b = Bench::new(&cluster, load, probe).await?;
    let settings = Settings {
        concurrency: load.concurrency,
        warmup_secs: load.warmup.as_secs_f64(),
        duration_secs: load.duration.as_secs_f64(),
        hash_permits: cluster.hash_permits,
        probe_clients: PROBE_CLIENTS,
        probe_rate,
        revocation_rounds,
    };

    step("argon2 check time, alone and in parallel");
    let hash = scenarios::hash_times(&b.procs, HASH_SAMPLES, cluster.hash_permits).await?;
    step("GET /healthz");
    let healthz = scenarios::healthz(&b).await?;
    step("GET /api/me, token cache on");
    let me_cached = scenarios::me(&b, &cluster.gateway_a).await?;
    step("GET /api/me, token cache off");
    let me_uncached = scenarios::me(&b, &cluster.gateway_uncached).await?;
    step("POST /api/auth/login");
    let login = scenarios::login(&b).await?;
    step("gateway added latency (one client, HTTP then NATS)");
    let (http_one, nats_one) = scenarios::me_one_client(&b).await?;
    step("revocation delay");
    let (delays, missed) = scenarios::revocation(&b, revocation_rounds).await?;
    step("/api/me probe, quiet");
    let quiet = scenarios::me_probe(&b).await?;
    step("/api/me probe during a login storm");
    let (storm_logins, storm_me) = scenarios::storm(&b).await?;

    machine.finished();
    let probe_name = format!("GET /api/me probe ({probe_rate}/s), quiet");
    let mut report = Report {
        machine,
        settings,
        rows: vec![
            Row::new("GET /healthz", &healthz, true),
            Row::new("GET /api/me, cache on", &me_cached, true),
            Row::new("GET /api/me, cache off", &me_uncached, true),
            Row::new("POST /api/auth/login", &login, true),
            Row::new("GET /api/me, cache on, 1 client", &http_one, true),
            Row::new("NATS Me (direct), 1 client", &nats_one, true),
            Row::new(&probe_name, &quiet, true),
            Row::new("POST /api/auth/login, storm", &storm_logins, false),
            Row::new("GET /api/me probe, during storm", &storm_me, false),
        ],
        gateway_added_latency: AddedLatency::new(&http_one, &nats_one),
        revocation: RevocationDelay::new(delays, missed),
        login_vs_theory: LoginTheory::new(hash, cluster.hash_permits, &login),
        storm: Storm {
            quiet_p99_ms: quiet.ms(0.99),
            storm_p99_ms: storm_me.ms(0.99),
            storm_logins_per_sec: storm_logins.per_sec(),
        },
        targets: Vec::new(),
    };
    report.judge(&healthz, &me_cached);
    Ok(report)
}

fn step(what: &str) {
    tracing::info!("measuring: {what}");
}
