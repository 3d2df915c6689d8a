//! `carehub-bench read`: each hot read of a signed-in patient through the gateway, against its
//! floor: the same SQL behind a bare axum → async-nats → sqlx handler, with no authentication
//! and no logs, on the same data and database (see docs/BENCHMARKS.md). Each read reaches at
//! least 70% of its floor's throughput, or the figures show where the rest goes: the CPU time
//! per request of every process on the path.
//!
//! Map: [`seed`] writes the fixed data and checks both paths answer it, [`floor`] is the
//! floor process and the bench's handle on it; this file runs the reads and their floors in
//! turn and prints the figures.

pub(crate) mod floor;
mod seed;

use super::booking::create_accounts;
use super::booking::system::{Carehub, Storage};
use super::cpu::{CpuDelta, Group, Members, Procs, user_id};
use super::hub::secs;
use super::load::{Load, Op, Outcome, op};
use super::report::Machine;
use anyhow::Context as _;
use floor::FloorProcess;
use reqwest::header::AUTHORIZATION;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A read passes when its throughput is at least this share of its floor's.
const TARGET_SHARE: f64 = 0.70;

/// The processes whose CPU time is reported per request, in column order: carehub's on the
/// path of these reads, nats-server, PostgreSQL, the floor, and the load generator (this
/// process, which shares the machine).
const COLUMNS: [&str; 9] = [
    "gateway",
    "auth",
    "patient",
    "admin",
    "notify",
    "nats-server",
    "postgres",
    "floor",
    "bench",
];

/// Options of `carehub-bench read`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReadArgs {
    /// Concurrent client connections of each run (closed loop: one request at a time each).
    #[arg(long, default_value_t = 64)]
    pub(crate) concurrency: usize,
    /// Warm-up seconds before each measured window.
    #[arg(long, default_value_t = 2.0)]
    pub(crate) warmup: f64,
    /// Measured seconds of each run.
    #[arg(long, default_value_t = 8.0)]
    pub(crate) duration: f64,
    /// Runs of each read and of its floor, alternating (read, floor, read, floor, …), so that
    /// other load on the machine hits both alike; the figures are their medians.
    #[arg(long, default_value_t = 2)]
    pub(crate) rounds: usize,
    /// Use this existing, empty PostgreSQL database instead of starting a private cluster.
    #[arg(long)]
    pub(crate) database_url: Option<String>,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
}

/// The hot reads, each asked as the patient of the fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    Profile,
    Appointments,
    Notifications,
    UnreadCount,
    Slots,
}

impl Read {
    const ALL: [Self; 5] = [
        Self::Profile,
        Self::Appointments,
        Self::Notifications,
        Self::UnreadCount,
        Self::Slots,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Profile => "GET /api/patients/me/profile",
            Self::Appointments => "GET /api/appointments?limit=20",
            Self::Notifications => "GET /api/notifications?limit=20",
            Self::UnreadCount => "GET /api/notifications/unread-count",
            Self::Slots => "GET /api/doctors/{id}/slots, 7 days",
        }
    }
}

/// One measured window.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Run {
    pub(crate) per_sec: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    /// CPU time per successful request of each of [`COLUMNS`], µs.
    pub(crate) cpu_us: Vec<f64>,
}

impl Run {
    fn new(o: &Outcome) -> Self {
        Self {
            per_sec: o.per_sec(),
            p50_ms: o.ms(0.5),
            p99_ms: o.ms(0.99),
            errors: o.errors,
            first_error: o.first_error.clone(),
            cpu_us: COLUMNS
                .iter()
                .map(|c| o.us_per_request(cpu_of(&o.cpu, c)))
                .collect(),
        }
    }
}

/// The CPU time of the process (or group) `column` names.
fn cpu_of(cpu: &CpuDelta, column: &str) -> Duration {
    match column {
        "gateway" => cpu.gateways,
        "auth" => cpu.auth,
        "nats-server" => cpu.nats,
        "bench" => cpu.bench,
        group => cpu
            .groups
            .iter()
            .find(|(name, _)| name == group)
            .map(|(_, d)| *d)
            .unwrap_or_default(),
    }
}

/// One path's figures: the medians of its runs.
#[derive(Debug, Serialize)]
pub(crate) struct PathFigures {
    pub(crate) per_sec: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// Over every run.
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    /// (process, µs per request).
    pub(crate) cpu_us: Vec<(String, f64)>,
    /// Their sum: on a machine whose cores are all busy, throughput is about the cores
    /// divided by it.
    pub(crate) cpu_total_us: f64,
    /// The size of one answer's body, read before the runs.
    pub(crate) answer_bytes: usize,
    pub(crate) runs: Vec<Run>,
}

impl PathFigures {
    fn new(runs: Vec<Run>, answer_bytes: usize) -> Self {
        let of = |f: fn(&Run) -> f64| median(runs.iter().map(f));
        let cpu_us: Vec<(String, f64)> = COLUMNS
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let us = median(runs.iter().map(|r| r.cpu_us.get(i).copied().unwrap_or(0.0)));
                ((*c).to_owned(), us)
            })
            .collect();
        Self {
            per_sec: of(|r| r.per_sec),
            p50_ms: of(|r| r.p50_ms),
            p99_ms: of(|r| r.p99_ms),
            errors: runs.iter().map(|r| r.errors).sum(),
            first_error: runs.iter().find_map(|r| r.first_error.clone()),
            cpu_total_us: cpu_us.iter().map(|(_, us)| us).sum(),
            cpu_us,
            answer_bytes,
            runs,
        }
    }
}

/// One read and its floor.
#[derive(Debug, Serialize)]
pub(crate) struct ReadFigures {
    pub(crate) name: String,
    pub(crate) carehub: PathFigures,
    pub(crate) floor: PathFigures,
    /// carehub's throughput ÷ the floor's.
    pub(crate) share: f64,
    /// `share` >= 70%.
    pub(crate) pass: bool,
}

impl ReadFigures {
    fn new(read: Read, carehub: PathFigures, floor: PathFigures) -> Self {
        let (share, pass) = judge(carehub.per_sec, floor.per_sec);
        Self {
            name: read.name().to_owned(),
            carehub,
            floor,
            share,
            pass,
        }
    }
}

/// The share of its floor's throughput a read reaches, and whether it meets [`TARGET_SHARE`].
fn judge(read_per_sec: f64, floor_per_sec: f64) -> (f64, bool) {
    let share = if floor_per_sec > 0.0 {
        read_per_sec / floor_per_sec
    } else {
        0.0
    };
    (share, share >= TARGET_SHARE)
}

/// The median of `values`: the middle one, or the mean of the two middle ones for an even
/// count (so two rounds give their mean; `hub`'s median keeps the upper one); 0 for none.
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

/// Everything one `carehub-bench read` run measured.
#[derive(Debug, Serialize)]
pub(crate) struct Figures {
    pub(crate) machine: Machine,
    /// `private cluster` or `existing database`.
    pub(crate) database: String,
    /// Which processes the `postgres` column counts.
    pub(crate) postgres_processes: String,
    pub(crate) concurrency: usize,
    pub(crate) warmup_secs: f64,
    pub(crate) duration_secs: f64,
    pub(crate) rounds: usize,
    pub(crate) reads: Vec<ReadFigures>,
}

fn step(what: &str) {
    tracing::info!("read bench: {what}");
}

/// Runs the benchmark and prints the figures.
///
/// # Errors
/// When the system cannot be started or seeded, the seed is not what it must be, a run has no
/// successful request, the JSON file cannot be written, or on Ctrl-C.
pub(crate) async fn run(args: ReadArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rounds > 0 && args.concurrency > 0,
        "--rounds and --concurrency must be at least 1"
    );
    let load = Load::closed(
        args.concurrency,
        secs(args.warmup, "--warmup")?,
        secs(args.duration, "--duration")?,
    );
    let signal = carehub_runtime::shutdown::on_signal();
    let figures = tokio::select! {
        r = Box::pin(measure(&args, load)) => r?,
        () = signal.cancelled() => anyhow::bail!("interrupted; the benchmark's processes were stopped"),
    };
    print!("{figures}");
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&figures)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

async fn measure(args: &ReadArgs, load: Load) -> anyhow::Result<Figures> {
    let mut machine = Machine::this();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")?;
    let storage = args
        .database_url
        .clone()
        .map_or(Storage::PrivatePostgres, Storage::Postgres);
    step("starting nats-server and PostgreSQL");
    let mut carehub = Carehub::prepare(&storage, true).await?;
    // Every token must outlive the seeding and every round.
    carehub.rig.set_var("CAREHUB_ACCESS_TOKEN_TTL", "7200");
    step(&format!(
        "writing {} patient and 2 doctor accounts",
        seed::PATIENTS
    ));
    create_accounts(&carehub, seed::PATIENTS).await?;
    step("starting auth, doctor, patient, notify, admin and gateway");
    carehub.start_services(&http).await?;
    step("seeding: availability, 500 bookings, the profile, 200 notifications");
    let fixture = seed::seed(&http, &carehub).await?;
    step("starting the floor");
    let floor = start_floor(&carehub).await?;
    step("checking the data through the gateway and the floor");
    seed::verify_gateway(&http, &carehub.base, &fixture).await?;
    seed::verify_floor(&http, &floor.base, &fixture).await?;
    let (procs, postgres_processes) = procs(&carehub, &floor)?;

    let mut reads = Vec::new();
    let bearer = format!("Bearer {}", fixture.reader.token);
    for read in Read::ALL {
        let gateway = seed::gateway_url(&carehub.base, read, &fixture);
        let bare = seed::floor_url(&floor.base, read, &fixture);
        let sizes = (
            fetch(&http, &gateway, Some(&bearer)).await?,
            fetch(&http, &bare, None).await?,
        );
        let ours = request(&http, gateway, Some(bearer.clone()));
        let theirs = request(&http, bare, None);
        let (mut carehub_runs, mut floor_runs) = (Vec::new(), Vec::new());
        for round in 1..=args.rounds {
            step(&format!(
                "{}, round {round} of {}",
                read.name(),
                args.rounds
            ));
            carehub_runs.push(Run::new(&load.run(&procs, &ours).await?));
            floor_runs.push(Run::new(&load.run(&procs, &theirs).await?));
        }
        reads.push(ReadFigures::new(
            read,
            PathFigures::new(carehub_runs, sizes.0),
            PathFigures::new(floor_runs, sizes.1),
        ));
    }
    machine.finished();
    floor.stop().await;
    drop(carehub);
    Ok(Figures {
        machine,
        database: match storage {
            Storage::Postgres(_) => "existing database",
            _ => "private cluster",
        }
        .to_owned(),
        postgres_processes,
        concurrency: load.concurrency,
        warmup_secs: load.warmup.as_secs_f64(),
        duration_secs: load.duration.as_secs_f64(),
        rounds: args.rounds,
        reads,
    })
}

/// Starts the floor on a free port, on the services' databases and the benchmark's
/// nats-server.
async fn start_floor(carehub: &Carehub) -> anyhow::Result<FloorProcess> {
    let url = |service: &str| -> anyhow::Result<String> {
        carehub
            .database(service)?
            .0
            .context("the read benchmark runs on PostgreSQL only")
    };
    let plan = floor::Plan {
        nats_url: carehub.nats_url.clone(),
        addr: SocketAddr::from(([127, 0, 0, 1], super::cluster::free_port()?)),
        patient_db: url("patient")?,
        admin_db: url("admin")?,
        notify_db: url("notify")?,
    };
    FloorProcess::start(&plan, &floor::log_path(carehub.rig.dir())).await
}

/// The processes of [`COLUMNS`] (the load generator is always counted), and which processes
/// the `postgres` column counts: the private cluster's, or those of the `postgres` user with
/// `--database-url` (none when there is no such user here).
fn procs(carehub: &Carehub, floor: &FloorProcess) -> anyhow::Result<(Procs, String)> {
    let pid = |name: &str| {
        carehub
            .rig
            .pid(name)
            .with_context(|| format!("no child called {name}"))
    };
    let (postgres, which) = match (carehub.postgres_pid(), user_id("postgres")) {
        (Some(postmaster), _) => (
            Members::Family(postmaster),
            "the private cluster: its postmaster and every process it started",
        ),
        (None, Some(uid)) => (
            Members::User(uid),
            "every process of the user postgres on this machine",
        ),
        (None, None) => (Members::Pids(Vec::new()), "none: no postgres user here"),
    };
    let mut groups = Vec::new();
    for service in ["patient", "admin", "notify"] {
        groups.push(Group::new(service, Members::Pids(vec![pid(service)?])));
    }
    groups.push(Group::new("postgres", postgres));
    groups.push(Group::new("floor", Members::Pids(vec![floor.pid()?])));
    let procs = Procs {
        auth: pid("auth")?,
        gateways: vec![pid("gateway")?],
        nats: pid("nats-server")?,
        groups,
    };
    Ok((procs, which.to_owned()))
}

/// `GET url` (with this `Authorization` header) as an [`Op`]: one request per call.
fn request(http: &reqwest::Client, url: String, authorization: Option<String>) -> Op {
    let http = http.clone();
    let url: Arc<str> = url.into();
    let authorization: Option<Arc<str>> = authorization.map(Into::into);
    op(move |_| {
        let (http, url, authorization) = (http.clone(), Arc::clone(&url), authorization.clone());
        async move { fetch(&http, &url, authorization.as_deref()).await.map(drop) }
    })
}

/// `GET url`, its body read whole: its size in bytes; a non-2xx answer is an error.
async fn fetch(
    http: &reqwest::Client,
    url: &str,
    authorization: Option<&str>,
) -> anyhow::Result<usize> {
    let mut req = http.get(url);
    if let Some(a) = authorization {
        req = req.header(AUTHORIZATION, a);
    }
    let r = req.send().await?;
    let status = r.status();
    let body = r.bytes().await?;
    anyhow::ensure!(status.is_success(), "HTTP {status}");
    Ok(body.len())
}

/// Width of the first column of both tables.
const NAME_WIDTH: usize = 36;

/// The human-readable report.
impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.machine.write_header(f, "carehub-bench read")?;
        writeln!(
            f,
            "PostgreSQL ({}); {} connections; {} s warm-up + {} s measured per run; {} rounds, each read then its floor; medians",
            self.database, self.concurrency, self.warmup_secs, self.duration_secs, self.rounds
        )?;
        writeln!(
            f,
            "data: a patient with {} appointments and {} notifications ({} unread), a doctor with {} confirmed appointments over 4 weeks; pages of {}",
            seed::READER_APPOINTMENTS,
            seed::NOTIFICATIONS,
            seed::UNREAD,
            seed::DOCTOR_APPOINTMENTS,
            seed::PAGE
        )?;
        writeln!(
            f,
            "\n{:<NAME_WIDTH$} {:-^35}  {:-^35}",
            "", " carehub ", " floor "
        )?;
        writeln!(
            f,
            "{:<NAME_WIDTH$} {:>8} {:>8} {:>8} {:>8}  {:>8} {:>8} {:>8} {:>8}  {:>12}",
            "read",
            "req/s",
            "p50 ms",
            "p99 ms",
            "bytes",
            "req/s",
            "p50 ms",
            "p99 ms",
            "bytes",
            "read/floor"
        )?;
        for r in &self.reads {
            let verdict = if r.pass { "PASS" } else { "MISS" };
            writeln!(
                f,
                "{:<NAME_WIDTH$} {:>8.1} {:>8.2} {:>8.2} {:>8}  {:>8.1} {:>8.2} {:>8.2} {:>8}  {:>6.1}% {verdict}",
                r.name,
                r.carehub.per_sec,
                r.carehub.p50_ms,
                r.carehub.p99_ms,
                r.carehub.answer_bytes,
                r.floor.per_sec,
                r.floor.p50_ms,
                r.floor.p99_ms,
                r.floor.answer_bytes,
                r.share * 100.0
            )?;
        }
        let width = |c: &str| c.len().max(8);
        write!(f, "\n{:<NAME_WIDTH$} {:<7}", "CPU µs per request", "path")?;
        for c in COLUMNS {
            write!(f, " {c:>w$}", w = width(c))?;
        }
        writeln!(f, " {:>8}", "total")?;
        for r in &self.reads {
            for (name, path, figures) in [
                (r.name.as_str(), "carehub", &r.carehub),
                ("", "floor", &r.floor),
            ] {
                write!(f, "{name:<NAME_WIDTH$} {path:<7}")?;
                for (c, us) in &figures.cpu_us {
                    write!(f, " {us:>w$.0}", w = width(c))?;
                }
                writeln!(f, " {:>8.0}", figures.cpu_total_us)?;
            }
        }
        writeln!(f, "postgres: {}", self.postgres_processes)?;
        for r in &self.reads {
            for (path, figures) in [("carehub", &r.carehub), ("floor", &r.floor)] {
                if figures.errors > 0 {
                    writeln!(
                        f,
                        "errors, {} ({path}): {}; first: {}",
                        r.name,
                        figures.errors,
                        figures.first_error.as_deref().unwrap_or("?")
                    )?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_middle_value_or_the_mean_of_the_middle_two() {
        assert!((median([5.0, 1.0, 3.0].into_iter()) - 3.0).abs() < 1e-9);
        assert!((median([4.0, 1.0].into_iter()) - 2.5).abs() < 1e-9);
        assert!((median([7.0].into_iter()) - 7.0).abs() < 1e-9);
        assert!(median(std::iter::empty()).abs() < 1e-9);
    }

    #[test]
    fn a_read_passes_at_seventy_percent_of_its_floor() {
        let (share, pass) = judge(700.0, 1000.0);
        assert!((share - 0.7).abs() < 1e-9);
        assert!(pass);
        assert!(!judge(699.0, 1000.0).1);
        assert_eq!(judge(10.0, 0.0), (0.0, false));
    }

    fn run(per_sec: f64, cpu: f64) -> Run {
        Run {
            per_sec,
            p50_ms: per_sec / 100.0,
            p99_ms: per_sec / 10.0,
            errors: 1,
            first_error: (per_sec > 150.0).then(|| "late".to_owned()),
            cpu_us: vec![cpu; COLUMNS.len()],
        }
    }

    #[test]
    fn a_paths_figures_are_the_medians_of_its_runs_and_its_errors_add_up() {
        let p = PathFigures::new(
            vec![run(100.0, 10.0), run(300.0, 30.0), run(200.0, 20.0)],
            12,
        );
        assert!((p.per_sec - 200.0).abs() < 1e-9);
        assert!((p.p99_ms - 20.0).abs() < 1e-9);
        assert_eq!(p.errors, 3);
        assert_eq!(p.first_error.as_deref(), Some("late"));
        assert_eq!(p.cpu_us.len(), COLUMNS.len());
        assert_eq!(p.cpu_us[0].0, "gateway");
        assert!((p.cpu_us[8].1 - 20.0).abs() < 1e-9);
        assert!((p.cpu_total_us - 20.0 * COLUMNS.len() as f64).abs() < 1e-9);
    }

    #[test]
    fn each_column_reads_its_process_or_group() {
        let cpu = CpuDelta {
            auth: Duration::from_millis(1),
            gateways: Duration::from_millis(2),
            nats: Duration::from_millis(3),
            bench: Duration::from_millis(4),
            groups: vec![("floor".to_owned(), Duration::from_millis(5))],
        };
        let ms = |c: &str| cpu_of(&cpu, c).as_millis();
        assert_eq!(
            [
                ms("auth"),
                ms("gateway"),
                ms("nats-server"),
                ms("bench"),
                ms("floor")
            ],
            [1, 2, 3, 4, 5]
        );
        assert_eq!(ms("admin"), 0);
    }
}
