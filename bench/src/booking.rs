//! `carehub-bench booking`: many patients racing for the free slots of one doctor who lets
//! patients book instantly, and the time a request takes to reach a doctor as an offer, per
//! storage backend (see docs/BENCHMARKS.md).
//!
//! Map: [`system`] starts the carehub under test as child processes, [`postgres`] a private
//! PostgreSQL for the PostgreSQL run; this file drives the scenario and prints the figures.

mod postgres;
pub(super) mod system;

use super::cpu::{MachineCpu, MachineDelta};
use super::report::{self, Machine, Target};
use super::{PASSWORD, log_in};
use anyhow::Context as _;
use carehub_nats::Role;
use carehub_nats::appointment::AppointmentEvent;
pub(super) use carehub_nats::time::rfc3339;
use carehub_runtime::Db;
use futures::{StreamExt as _, TryStreamExt as _};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use system::{Carehub, Storage};

/// Logins in flight while the patients sign in (each is one argon2 check in auth).
const LOGINS_IN_FLIGHT: usize = 8;
/// Accounts written into the auth database at once (each hashes its password).
const ACCOUNTS_IN_FLIGHT: usize = 4;
/// How long the setup may wait for the admin service to learn the doctors' availability.
const SETUP_DEADLINE: Duration = Duration::from_secs(60);
/// How long one offer may take to arrive before the run fails.
const OFFER_DEADLINE: Duration = Duration::from_secs(10);
const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
/// Concurrent clients of the slot-listing figures.
const SLOT_CLIENTS: usize = 16;
/// Confirmed appointments the listed doctor holds, spread over four weeks.
const BOOKED_FOR_LISTING: usize = 500;
/// Untimed slot queries per client before the timed ones.
const WARM_UP_PER_CLIENT: usize = 100;
/// How long the listing waits for the system to finish what the bookings before it set in
/// motion (their events, notifications and mails).
const SETTLE_DEADLINE: Duration = Duration::from_secs(60);

/// Which storage backends to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BackendChoice {
    Sqlite,
    Postgres,
    Both,
}

/// How the benchmark's nats-server stores JetStream messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum NatsSync {
    /// As shipped (`sync_interval: always`): each message on disk before it is acknowledged.
    Always,
    /// The server's default: acknowledged at once, synced every two minutes.
    Default,
}

impl std::fmt::Display for NatsSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Always => "always",
            Self::Default => "default",
        })
    }
}

/// Options of `carehub-bench booking`.
#[derive(Debug, clap::Args)]
pub(crate) struct BookingArgs {
    /// Storage backend(s) to run on.
    #[arg(long, value_enum, default_value_t = BackendChoice::Both)]
    pub(crate) backend: BackendChoice,
    /// nats-server runs the shipped single-node config (`nats/conf/single.conf`, carehub's
    /// users), with its `sync_interval: always` or with the server's default sync.
    #[arg(long, value_enum, default_value_t = NatsSync::Always)]
    pub(crate) nats_sync: NatsSync,
    /// Patients, each trying to book one slot; all attempts are sent at once.
    #[arg(long, default_value_t = 1000)]
    pub(crate) patients: usize,
    /// Free slots of the doctor the patients race for (patient i tries slot i mod slots).
    #[arg(long, default_value_t = 50)]
    pub(crate) slots: usize,
    /// 7-day slot queries timed against the doctor with 500 confirmed appointments, spread
    /// over the 16 clients (raise it to profile the listing: it then runs longer).
    #[arg(long, default_value_t = 4_000)]
    pub(crate) listing_queries: usize,
    /// On PostgreSQL, list right after gathering statistics (`ANALYZE`), before the vacuum
    /// that autovacuum runs within a minute has marked the new pages all-visible, so every
    /// taken time is read from its table row too (the default vacuums and analyzes first).
    #[arg(long)]
    pub(crate) listing_unvacuumed: bool,
    /// Requests to a named doctor, one at a time, for the request-to-offer latency.
    #[arg(long, default_value_t = 100)]
    pub(crate) offer_requests: usize,
    /// Use this existing, empty PostgreSQL database for the PostgreSQL run instead of starting
    /// a private cluster.
    #[arg(long)]
    pub(crate) database_url: Option<String>,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
}

/// The figures of one backend's run.
#[derive(Debug, Serialize)]
pub(crate) struct Figures {
    pub(crate) backend: String,
    /// JetStream's sync setting (`always` or `default`).
    pub(crate) nats_sync: String,
    pub(crate) machine: Machine,
    pub(crate) patients: usize,
    pub(crate) slots: usize,
    /// Attempts that got an HTTP answer, and how they were answered.
    pub(crate) answered: usize,
    pub(crate) created: usize,
    pub(crate) conflicts: usize,
    pub(crate) other: usize,
    pub(crate) transport_errors: usize,
    pub(crate) first_unexpected: Option<String>,
    /// From releasing the attempts until the last answer.
    pub(crate) wall_secs: f64,
    pub(crate) answered_per_sec: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    /// Distinct slot starts among the 201 answers.
    pub(crate) distinct_slots_won: usize,
    /// Read from the admin service's database after the race.
    pub(crate) confirmed_in_db: i64,
    pub(crate) overlapping_pairs_in_db: i64,
    /// `POST /api/appointments` sent → `offered` event received over NATS.
    pub(crate) offer_samples: usize,
    pub(crate) offer_p50_ms: f64,
    pub(crate) offer_p99_ms: f64,
    /// `POST /api/appointments` answer time during the same requests.
    pub(crate) request_p50_ms: f64,
    pub(crate) request_p99_ms: f64,
    /// `GET /api/doctors/{id}/slots` (7-day windows, 16 clients) while the race runs.
    pub(crate) race_slot_queries: usize,
    pub(crate) race_slot_queries_per_sec: f64,
    pub(crate) race_slot_p99_ms: f64,
    /// The same for a doctor with 500 confirmed appointments over four weeks.
    pub(crate) listing_booked: usize,
    pub(crate) listing_queries: usize,
    pub(crate) listing_per_sec: f64,
    pub(crate) listing_p50_ms: f64,
    pub(crate) listing_p99_ms: f64,
    /// How long the system took to finish the work the 500 bookings set in motion before the
    /// listing was timed; `None` when it was still busy after a minute (timed anyway).
    pub(crate) listing_settled_secs: Option<f64>,
    /// On PostgreSQL, whether the admin tables were vacuumed before the timed listing, or only
    /// analyzed (`--listing-unvacuumed`); `None` on SQLite.
    pub(crate) listing_vacuumed: Option<bool>,
    /// The whole machine's CPU time per timed query (every process, the kernel, PostgreSQL
    /// and the clients), in µs, and the share of the window's CPU time the hypervisor gave
    /// to other machines: latency moves with both, the first is this system's own cost.
    pub(crate) listing_cpu_us_per_query: f64,
    pub(crate) listing_steal_share: f64,
    /// Slot queries, during the race and after it, that listed a slot already won.
    pub(crate) listed_taken: usize,
}

impl Figures {
    /// Whether the race ended as it must: one winner per slot, everyone else a 409, no
    /// overlap in the database.
    pub(crate) fn correct(&self) -> bool {
        self.created == self.slots
            && self.conflicts == self.patients - self.slots
            && self.other == 0
            && self.transport_errors == 0
            && self.distinct_slots_won == self.slots
            && self.confirmed_in_db == i64::try_from(self.slots).unwrap_or(i64::MAX)
            && self.overlapping_pairs_in_db == 0
            && self.listed_taken == 0
    }

    /// What this run is judged by: a correct race, the booking throughput and the slot listing's
    /// p99.
    pub(crate) fn targets(&self) -> Vec<Target> {
        vec![
            Target::new(
                "one booking per slot, every other attempt 409",
                format!(
                    "{} confirmed of {} slots, {} answered 409, {} overlaps",
                    self.confirmed_in_db, self.slots, self.conflicts, self.overlapping_pairs_in_db
                ),
                self.correct(),
            ),
            Target::new(
                "answered attempts/s >= 500",
                format!("{:.1}", self.answered_per_sec),
                self.answered_per_sec >= 500.0,
            ),
            Target::new(
                format!("slot listing p99 <= 10 ms ({} booked)", self.listing_booked),
                format!("{:.2} ms", self.listing_p99_ms),
                self.listing_p99_ms <= 10.0,
            ),
        ]
    }
}

/// The human-readable report.
impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.machine.write_header(
            f,
            &format!(
                "carehub-bench booking on {}, JetStream sync {}",
                self.backend, self.nats_sync
            ),
        )?;
        writeln!(
            f,
            "{} patients race for {} free slots of one auto-accept doctor ({} per slot), all sent at once\n",
            self.patients,
            self.slots,
            self.patients.div_ceil(self.slots.max(1))
        )?;
        writeln!(
            f,
            "{:<28} {:>8} {:>5} {:>5} {:>5} {:>11} {:>8} {:>8} {:>8}",
            "scenario",
            "answered",
            "201",
            "409",
            "other",
            "answered/s",
            "p50 ms",
            "p99 ms",
            "max ms"
        )?;
        writeln!(
            f,
            "{:<28} {:>8} {:>5} {:>5} {:>5} {:>11.1} {:>8.1} {:>8.1} {:>8.1}",
            "POST /api/appointments/book",
            self.answered,
            self.created,
            self.conflicts,
            self.other + self.transport_errors,
            self.answered_per_sec,
            self.p50_ms,
            self.p99_ms,
            self.max_ms
        )?;
        writeln!(
            f,
            "\nadmin database after the race: {} confirmed, {} overlapping pairs; {} distinct slots won",
            self.confirmed_in_db, self.overlapping_pairs_in_db, self.distinct_slots_won
        )?;
        if let Some(e) = &self.first_unexpected {
            writeln!(f, "first unexpected answer: {e}")?;
        }
        writeln!(
            f,
            "request reaches the doctor as an offer ({} requests, one at a time): p50 {:.2} ms, p99 {:.2} ms",
            self.offer_samples, self.offer_p50_ms, self.offer_p99_ms
        )?;
        writeln!(
            f,
            "  (POST /api/appointments answered 201 in p50 {:.2} ms, p99 {:.2} ms)",
            self.request_p50_ms, self.request_p99_ms
        )?;
        writeln!(
            f,
            "\n{:<44} {:>8} {:>10} {:>8} {:>8}",
            "GET /api/doctors/{id}/slots, 7 days, 16 clients",
            "queries",
            "queries/s",
            "p50 ms",
            "p99 ms"
        )?;
        writeln!(
            f,
            "{:<44} {:>8} {:>10.1} {:>8} {:>8.2}",
            "  during the race",
            self.race_slot_queries,
            self.race_slot_queries_per_sec,
            "",
            self.race_slot_p99_ms
        )?;
        writeln!(
            f,
            "{:<44} {:>8} {:>10.1} {:>8.2} {:>8.2}",
            format!(
                "  doctor with {} confirmed over 4 weeks",
                self.listing_booked
            ),
            self.listing_queries,
            self.listing_per_sec,
            self.listing_p50_ms,
            self.listing_p99_ms
        )?;
        match self.listing_settled_secs {
            Some(secs) => writeln!(
                f,
                "  (timed once the system was quiet, {secs:.1} s after the bookings)"
            )?,
            None => writeln!(
                f,
                "  (timed while the system was still busy a minute after the bookings)"
            )?,
        }
        match self.listing_vacuumed {
            Some(true) => writeln!(f, "  (after VACUUM ANALYZE, as autovacuum does)")?,
            Some(false) => writeln!(
                f,
                "  (after ANALYZE only: new pages not yet vacuumed, --listing-unvacuumed)"
            )?,
            None => {}
        }
        writeln!(
            f,
            "  machine CPU per timed query {:.0} µs (all processes and the kernel); steal {:.1}%",
            self.listing_cpu_us_per_query,
            self.listing_steal_share * 100.0
        )?;
        writeln!(
            f,
            "slot queries listing a slot already booked: {}",
            self.listed_taken
        )?;
        writeln!(f)?;
        report::write_targets(f, &self.targets(), 48)
    }
}

/// Runs the scenario on each chosen backend and prints the figures.
///
/// # Errors
/// When the system cannot be started or driven, on Ctrl-C, or when a run's outcome is wrong
/// (not exactly one booking per slot, or an overlap in the database): that is a bug, not a
/// slow machine.
pub(crate) async fn run(args: BookingArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.slots > 0 && args.patients >= args.slots,
        "--patients must be at least --slots, and --slots at least 1"
    );
    let mut storages = Vec::new();
    if args.backend != BackendChoice::Postgres {
        storages.push(("sqlite", Storage::Sqlite));
    }
    if args.backend != BackendChoice::Sqlite {
        let pg = args
            .database_url
            .clone()
            .map_or(Storage::PrivatePostgres, Storage::Postgres);
        storages.push(("postgres", pg));
    }
    let signal = carehub_runtime::shutdown::on_signal();
    let mut all = Vec::new();
    for (name, storage) in storages {
        let figures = tokio::select! {
            r = Box::pin(measure(&args, name, &storage)) => r.with_context(|| format!("the {name} run"))?,
            () = signal.cancelled() => anyhow::bail!("interrupted; the benchmark's processes were stopped"),
        };
        println!("{figures}");
        all.push(figures);
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&all)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    let wrong: Vec<&str> = all
        .iter()
        .filter(|f| !f.correct())
        .map(|f| f.backend.as_str())
        .collect();
    anyhow::ensure!(
        wrong.is_empty(),
        "the booking race ended wrongly on {}",
        wrong.join(", ")
    );
    Ok(())
}

/// One signed-in account.
#[derive(Debug, Clone)]
pub(super) struct Signed {
    pub(super) token: String,
    pub(super) id: String,
}

pub(super) fn patient_email(i: usize) -> String {
    format!("patient-{i}@bench.example.org")
}

pub(super) fn doctor_email(i: usize) -> String {
    format!("doctor-{i}@bench.example.org")
}

fn step(what: &str) {
    tracing::info!("booking bench: {what}");
}

async fn measure(args: &BookingArgs, name: &str, storage: &Storage) -> anyhow::Result<Figures> {
    let mut machine = Machine::this();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")?;
    step(&format!("starting nats-server and storage ({name})"));
    let mut carehub = Carehub::prepare(storage, args.nats_sync == NatsSync::Always).await?;
    step(&format!(
        "writing {} patient and 2 doctor accounts",
        args.patients
    ));
    create_accounts(&carehub, args.patients).await?;
    step("starting auth, doctor, patient, notify, admin and gateway");
    carehub.start_services(&http).await?;
    let base = carehub.base.clone();

    let booking_doctor = sign_in(&http, &base, &doctor_email(0)).await?;
    let request_doctor = sign_in(&http, &base, &doctor_email(1)).await?;
    let v0 = set_availability(&http, &base, &booking_doctor, true).await?;
    let v1 = set_availability(&http, &base, &request_doctor, false).await?;
    step("waiting for the admin service to apply the doctors' availability");
    wait_doctors_applied(
        &carehub.nats_url,
        &[
            (booking_doctor.id.clone(), v0),
            (request_doctor.id.clone(), v1),
        ],
    )
    .await?;

    step(&format!("signing in {} patients", args.patients));
    let patients = sign_in_patients(&http, &base, args.patients).await?;
    let slots = free_slots(&http, &base, &patients[0], &booking_doctor.id, args.slots).await?;

    step("the booking race, with 16 clients listing the slots meanwhile");
    let window = (today_ms() + DAY_MS, today_ms() + DAY_MS + 7 * DAY_MS);
    let listers = Listers::start(&http, &base, &patients, &booking_doctor.id, window, None);
    let race = race(&http, &base, &patients, &booking_doctor.id, &slots).await?;
    let during = listers.stop(&race.won).await?;
    let db = carehub.db("admin").await?;
    let (confirmed, overlaps) = check_database(&db, &booking_doctor.id).await;
    db.close().await;
    let (confirmed, overlaps) = (confirmed?, overlaps?);
    step(&format!(
        "booking {BOOKED_FOR_LISTING} appointments over four weeks, then listing the slots"
    ));
    let listing = listing(
        &http,
        &carehub,
        &base,
        &patients,
        &booking_doctor.id,
        &race.won,
        args,
    )
    .await?;

    step("request-to-offer latency");
    let offers = offer_latency(
        &http,
        &carehub,
        &patients,
        &request_doctor.id,
        args.offer_requests,
    )
    .await?;
    machine.finished();
    drop(carehub);

    let wall = race.wall.as_secs_f64();
    Ok(Figures {
        backend: name.to_owned(),
        nats_sync: args.nats_sync.to_string(),
        machine,
        patients: args.patients,
        slots: args.slots,
        answered: race.created + race.conflicts + race.other,
        created: race.created,
        conflicts: race.conflicts,
        other: race.other,
        transport_errors: race.transport_errors,
        first_unexpected: race.first_unexpected,
        wall_secs: wall,
        answered_per_sec: (race.created + race.conflicts + race.other) as f64 / wall,
        p50_ms: ms(&race.latency, 0.5),
        p99_ms: ms(&race.latency, 0.99),
        max_ms: race.latency.max() as f64 / 1000.0,
        distinct_slots_won: race.won.len(),
        confirmed_in_db: confirmed,
        overlapping_pairs_in_db: overlaps,
        offer_samples: offers.offered.len() as usize,
        offer_p50_ms: ms(&offers.offered, 0.5),
        offer_p99_ms: ms(&offers.offered, 0.99),
        request_p50_ms: ms(&offers.answered, 0.5),
        request_p99_ms: ms(&offers.answered, 0.99),
        race_slot_queries: during.queries,
        race_slot_queries_per_sec: during.queries as f64 / during.wall.as_secs_f64().max(1e-9),
        race_slot_p99_ms: ms(&during.latency, 0.99),
        listing_booked: listing.booked,
        listing_queries: listing.queries,
        listing_per_sec: listing.queries as f64 / listing.wall.as_secs_f64().max(1e-9),
        listing_p50_ms: ms(&listing.latency, 0.5),
        listing_p99_ms: ms(&listing.latency, 0.99),
        listing_settled_secs: listing.settled.map(|d| d.as_secs_f64()),
        listing_vacuumed: listing.vacuumed,
        listing_cpu_us_per_query: listing.machine.unwrap_or_default().busy.as_secs_f64() * 1e6
            / listing.queries.max(1) as f64,
        listing_steal_share: listing.machine.unwrap_or_default().steal_share,
        listed_taken: during.listed_taken + listing.listed_taken,
    })
}

/// What a run of slot queries measured.
struct SlotQueries {
    queries: usize,
    latency: Histogram<u64>,
    wall: Duration,
    /// Queries that listed a slot already won before they were sent.
    listed_taken: usize,
    booked: usize,
    /// See [`Figures::listing_settled_secs`].
    settled: Option<Duration>,
    /// The machine's CPU over the timed queries (the listing of the full diary only).
    machine: Option<MachineDelta>,
    /// See [`Figures::listing_vacuumed`].
    vacuumed: Option<bool>,
}

/// One `GET /api/doctors/{id}/slots` for `[from, to)`: the listed starts, in Unix milliseconds.
/// The answer is decoded in place (borrowed strings, one number per slot), so the clients,
/// which share the machine with the system they measure, take as little of it as they can.
async fn list_slots(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    doctor: &str,
    (from, to): (i64, i64),
) -> anyhow::Result<Vec<i64>> {
    #[derive(serde::Deserialize)]
    struct Listed<'a> {
        #[serde(borrow)]
        slots: Vec<Start<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Start<'a> {
        start: &'a str,
    }
    let r = http
        .get(format!("{base}/api/doctors/{doctor}/slots"))
        .query(&[("from", rfc3339(from)), ("to", rfc3339(to))])
        .bearer_auth(token)
        .send()
        .await?;
    let status = r.status();
    let body = r.bytes().await?;
    anyhow::ensure!(
        status.is_success(),
        "slots: {status} {}",
        String::from_utf8_lossy(&body)
    );
    let listed: Listed<'_> = serde_json::from_slice(&body).context("a slot list")?;
    listed
        .slots
        .iter()
        .map(|s| millis(s.start).with_context(|| format!("a slot start: {}", s.start)))
        .collect()
}

/// An RFC 3339 time in Unix milliseconds.
fn millis(t: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// One lister's queries (when each was sent, what it listed) and their latencies.
type Listed = (Vec<(Instant, Vec<i64>)>, Histogram<u64>);

/// [`SLOT_CLIENTS`] clients listing a doctor's slots in a loop, each until stopped or for a
/// given number of queries.
struct Listers {
    stop: Arc<std::sync::atomic::AtomicBool>,
    started: Instant,
    tasks: tokio::task::JoinSet<anyhow::Result<Listed>>,
}

impl Listers {
    /// Starts the clients, one per patient from the end of `patients`; with `per_client`, each
    /// stops after that many queries.
    fn start(
        http: &reqwest::Client,
        base: &str,
        patients: &[Signed],
        doctor: &str,
        window: (i64, i64),
        per_client: Option<usize>,
    ) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = tokio::task::JoinSet::new();
        for p in patients.iter().rev().take(SLOT_CLIENTS) {
            let (http, base, doctor, token) = (
                http.clone(),
                base.to_owned(),
                doctor.to_owned(),
                p.token.clone(),
            );
            let stop = Arc::clone(&stop);
            tasks.spawn(async move {
                let mut seen = Vec::new();
                let mut latency = histogram()?;
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && per_client.is_none_or(|n| seen.len() < n)
                {
                    let sent = Instant::now();
                    let listed = list_slots(&http, &base, &token, &doctor, window).await?;
                    latency.saturating_record(micros(sent.elapsed()));
                    seen.push((sent, listed));
                }
                Ok((seen, latency))
            });
        }
        Self {
            stop,
            started: Instant::now(),
            tasks,
        }
    }

    /// Stops the clients; counts the queries that listed a slot of `won` although they were
    /// sent after the race ended (every 201 had been received by then).
    async fn stop(self, won: &HashSet<String>) -> anyhow::Result<SlotQueries> {
        let race_over = Instant::now();
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.collect(won, race_over).await
    }

    /// Waits until every client has sent its queries; counts those that listed a slot of
    /// `booked`.
    async fn finish(self, booked: &HashSet<String>) -> anyhow::Result<SlotQueries> {
        let started = self.started;
        self.collect(booked, started).await
    }

    /// The clients' figures; `listed_taken` counts the queries sent after `since` that listed
    /// a slot of `taken`.
    async fn collect(
        mut self,
        taken: &HashSet<String>,
        since: Instant,
    ) -> anyhow::Result<SlotQueries> {
        let mut out = SlotQueries {
            queries: 0,
            latency: histogram()?,
            wall: Duration::ZERO,
            listed_taken: 0,
            booked: taken.len(),
            settled: None,
            machine: None,
            vacuumed: None,
        };
        let taken: HashSet<i64> = taken
            .iter()
            .map(|s| millis(s).with_context(|| format!("a booked start: {s}")))
            .collect::<anyhow::Result<_>>()?;
        while let Some(joined) = self.tasks.join_next().await {
            let (seen, latency) = joined.context("a slot lister panicked")??;
            out.queries += seen.len();
            out.latency.add(&latency).context("merging histograms")?;
            out.listed_taken += seen
                .iter()
                .filter(|(sent, listed)| *sent > since && listed.iter().any(|s| taken.contains(s)))
                .count();
        }
        out.wall = if self.stop.load(std::sync::atomic::Ordering::Relaxed) {
            since.duration_since(self.started)
        } else {
            self.started.elapsed()
        };
        Ok(out)
    }
}

/// Books the doctor up to [`BOOKED_FOR_LISTING`] confirmed appointments spread over the next
/// four weeks (one patient each), then times `--listing-queries` 7-day slot queries from
/// [`SLOT_CLIENTS`] clients at once, checking none lists a booked slot.
async fn listing(
    http: &reqwest::Client,
    carehub: &Carehub,
    base: &str,
    patients: &[Signed],
    doctor: &str,
    won: &HashSet<String>,
    args: &BookingArgs,
) -> anyhow::Result<SlotQueries> {
    let (queries, vacuum) = (args.listing_queries, !args.listing_unvacuumed);
    let start = today_ms() + DAY_MS;
    let weeks = (start, start + 28 * DAY_MS);
    let needed = BOOKED_FOR_LISTING.saturating_sub(won.len());
    anyhow::ensure!(
        patients.len() >= needed + won.len(),
        "too few patients to book {BOOKED_FOR_LISTING} appointments"
    );
    // One patient per booking; the times differ from every race winner's, so nobody is busy.
    let bookers: Vec<&Signed> = patients[won.len()..won.len() + needed].iter().collect();
    let mut booked: HashSet<String> = won.clone();
    booked.extend(book_spread(http, base, &patients[0], doctor, weeks, &bookers).await?);
    let vacuumed = autovacuum_pass(carehub, "admin", "appointments, doctors", vacuum).await?;
    // The bookings' events, notifications and mails are processed after their answers; the
    // listing is timed once that is done, so it measures the listing rather than the tail of
    // the bookings.
    let settled = carehub.rig.settle(SETTLE_DEADLINE).await?;
    let window = (weeks.0 + 7 * DAY_MS, weeks.0 + 14 * DAY_MS);
    // Untimed first: the bookings' notifications and mails are still being processed, and each
    // pooled connection reads its pages and prepares its statement on its first query. Their
    // answers are checked like the timed ones.
    let warm = Listers::start(
        http,
        base,
        patients,
        doctor,
        window,
        Some(WARM_UP_PER_CLIENT),
    )
    .finish(&booked)
    .await?;
    let per_client = queries.div_ceil(SLOT_CLIENTS);
    let before = MachineCpu::sample()?;
    let mut timed = Listers::start(http, base, patients, doctor, window, Some(per_client))
        .finish(&booked)
        .await?;
    timed.machine = Some(MachineCpu::sample()?.since(&before));
    timed.listed_taken += warm.listed_taken;
    timed.settled = settled;
    timed.vacuumed = vacuumed;
    Ok(timed)
}

/// Books `doctor` for each of `bookers` (booking i by `bookers[i]`; one patient may book
/// several times), at free slots of `weeks` (Unix milliseconds, as `lister` sees them) spread
/// evenly over them, [`SLOT_CLIENTS`] at a time. Returns the booked starts.
///
/// # Errors
/// When the weeks hold too few free slots or a booking is not answered 201.
pub(super) async fn book_spread(
    http: &reqwest::Client,
    base: &str,
    lister: &Signed,
    doctor: &str,
    weeks: (i64, i64),
    bookers: &[&Signed],
) -> anyhow::Result<Vec<String>> {
    let mut free = Vec::new();
    // Two weeks per query: a slot list is answered whole.
    for from in (weeks.0..weeks.1).step_by(usize::try_from(14 * DAY_MS)?) {
        let window = (from, (from + 14 * DAY_MS).min(weeks.1));
        free.extend(list_slots(http, base, &lister.token, doctor, window).await?);
    }
    let needed = bookers.len();
    anyhow::ensure!(
        free.len() >= needed,
        "{} free slots, too few to book {needed} appointments",
        free.len()
    );
    let stride = free.len() / needed.max(1);
    let picks: Vec<(usize, String)> = free
        .iter()
        .step_by(stride.max(1))
        .take(needed)
        .map(|&ms| rfc3339(ms))
        .enumerate()
        .collect();
    let url = format!("{base}/api/appointments/book");
    futures::stream::iter(picks)
        .map(|(i, slot)| {
            let req = http
                .post(&url)
                .bearer_auth(&bookers[i].token)
                .header("Idempotency-Key", format!("bench-fill-{i}"))
                .json(&json!({"doctor_id": doctor, "start": slot, "reason": "a check-up"}));
            async move {
                let r = req.send().await?;
                let status = r.status();
                anyhow::ensure!(status.as_u16() == 201, "booking {slot}: {status}");
                Ok(slot)
            }
        })
        .buffer_unordered(SLOT_CLIENTS)
        .try_collect()
        .await
}

/// On PostgreSQL, does what autovacuum does on a live database within a minute of this many
/// new rows (admin migration 0012 sets `appointments` to be vacuumed and analyzed after 1% of
/// its rows, at least 100): gathers the planner's statistics on `tables` (a comma-separated
/// list) of `service`'s schema and, with `vacuum`, marks the new pages all-visible. The bench
/// lists seconds after the bookings. Without statistics the planner reads the taken times
/// through the overlap constraints' GiST indexes instead of the covering ones, at several times
/// the cost; without the vacuum every taken time is also read from its table row. Both are
/// states of a clinic's database only in the minute after a burst of bookings. Returns whether
/// the pages were vacuumed (`None` on SQLite).
pub(super) async fn autovacuum_pass(
    carehub: &Carehub,
    service: &str,
    tables: &'static str,
    vacuum: bool,
) -> anyhow::Result<Option<bool>> {
    let db = carehub.db(service).await?;
    let done = if let Db::Postgres(p) = &db {
        let verb = if vacuum { "VACUUM ANALYZE" } else { "ANALYZE" };
        let sql = format!("{verb} {tables}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.as_str()))
            .execute(p)
            .await
            .with_context(|| format!("{sql} in the {service} database"))?;
        Some(vacuum)
    } else {
        None
    };
    db.close().await;
    Ok(done)
}

pub(super) fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

pub(super) fn histogram() -> anyhow::Result<Histogram<u64>> {
    // 1 µs .. 120 s at 3 significant digits.
    Histogram::new_with_bounds(1, 120_000_000, 3).context("histogram bounds")
}

pub(super) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Writes the patients and two doctors straight into the auth database (as `carehub admin
/// create-user` does); auth publishes them when it starts.
pub(super) async fn create_accounts(carehub: &Carehub, patients: usize) -> anyhow::Result<()> {
    let db = Arc::new(carehub.db("auth").await?);
    // `create_user` migrates too; doing it once first keeps the concurrent calls from racing
    // to create the same tables.
    db.migrate(&carehub_auth::MIGRATOR).await?;
    let accounts = (0..patients)
        .map(|i| (patient_email(i), Role::Patient))
        .chain((0..2).map(|i| (doctor_email(i), Role::Doctor)));
    futures::stream::iter(accounts)
        .map(|(email, role)| {
            let db = Arc::clone(&db);
            async move {
                carehub_auth::create_user(&db, &email, PASSWORD, "Bench Person", role)
                    .await
                    .with_context(|| format!("creating {email}"))
            }
        })
        .buffer_unordered(ACCOUNTS_IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await?;
    db.close().await;
    Ok(())
}

pub(super) async fn sign_in(
    http: &reqwest::Client,
    base: &str,
    email: &str,
) -> anyhow::Result<Signed> {
    let session = log_in(http, base, email).await?;
    Ok(Signed {
        token: session.access_token,
        id: session.user.id,
    })
}

/// Signs every patient in, then sends each one `GET /api/me` once, as a signed-in client
/// would, so the race measures booking and not the first verification of each token.
pub(super) async fn sign_in_patients(
    http: &reqwest::Client,
    base: &str,
    n: usize,
) -> anyhow::Result<Vec<Signed>> {
    let patients: Vec<Signed> = futures::stream::iter(0..n)
        .map(|i| async move { sign_in(http, base, &patient_email(i)).await })
        .buffered(LOGINS_IN_FLIGHT)
        .try_collect()
        .await?;
    futures::stream::iter(&patients)
        .map(|p| async move {
            let r = http
                .get(format!("{base}/api/me"))
                .bearer_auth(&p.token)
                .send()
                .await?;
            anyhow::ensure!(r.status().is_success(), "GET /api/me: {}", r.status());
            Ok(())
        })
        .buffer_unordered(64)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(patients)
}

/// Gives `doctor` every day 00:00–23:30 UTC in 30-minute slots; returns the new version.
pub(super) async fn set_availability(
    http: &reqwest::Client,
    base: &str,
    doctor: &Signed,
    auto_accept: bool,
) -> anyhow::Result<i64> {
    let url = format!("{base}/api/doctors/me/availability");
    let deadline = Instant::now() + SETUP_DEADLINE;
    // The doctor service creates the profile from the account event it is sent.
    let current: Value = loop {
        let r = http.get(&url).bearer_auth(&doctor.token).send().await?;
        if r.status().is_success() {
            break r.json().await?;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the doctor service does not know doctor {}",
            doctor.id
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let weekly: Vec<Value> = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ]
    .iter()
    .map(|d| json!({"weekday": d, "start": "00:00", "end": "23:30"}))
    .collect();
    let body = json!({"expected_version": current["version"], "time_zone": "UTC",
        "weekly": weekly, "slot_minutes": 30, "auto_accept": auto_accept});
    let r = http
        .put(&url)
        .bearer_auth(&doctor.token)
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let after: Value = r.json().await?;
    anyhow::ensure!(status.is_success(), "availability: {status} {after}");
    after["version"]
        .as_i64()
        .context("availability answer without a version")
}

/// Waits until the doctors' availability events (at `versions`) are in `CAREHUB_DOCTORS` and
/// the admin service's durable consumer has acknowledged everything in it.
pub(super) async fn wait_doctors_applied(
    nats_url: &str,
    versions: &[(String, i64)],
) -> anyhow::Result<()> {
    use async_nats::jetstream::consumer::pull;
    let nc = crate::cluster::nats_connect(nats_url).await?;
    let js = async_nats::jetstream::new(nc);
    let deadline = Instant::now() + SETUP_DEADLINE;
    let mut published = false;
    loop {
        if let Ok(stream) = js.get_stream("CAREHUB_DOCTORS").await {
            if !published {
                let consumer = stream
                    .create_consumer(pull::Config {
                        filter_subject: carehub_nats::streams::DOCTORS.subjects.into(),
                        ..Default::default()
                    })
                    .await?;
                let events: Vec<Value> = consumer
                    .fetch()
                    .max_messages(10_000)
                    .expires(Duration::from_millis(300))
                    .messages()
                    .await?
                    .filter_map(|m| async move { serde_json::from_slice(&m.ok()?.payload).ok() })
                    .collect()
                    .await;
                published = versions.iter().all(|(id, v)| {
                    events
                        .iter()
                        .any(|e| e["doctor"]["id"] == id.as_str() && e["doctor"]["version"] == *v)
                });
            }
            if published
                && let Ok(mut c) = stream.get_consumer::<pull::Config>("admin-doctors").await
                && let Ok(info) = c.info().await
                && info.num_pending == 0
                && info.num_ack_pending == 0
            {
                return Ok(());
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the admin service did not apply the doctors' availability within {SETUP_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first `n` free slot starts of `doctor` from tomorrow 00:00 UTC.
pub(super) async fn free_slots(
    http: &reqwest::Client,
    base: &str,
    asker: &Signed,
    doctor: &str,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let tomorrow = today_ms() + DAY_MS;
    let mut slots = Vec::new();
    let mut from = tomorrow;
    while slots.len() < n {
        let to = from + 30 * DAY_MS;
        let r = http
            .get(format!("{base}/api/doctors/{doctor}/slots"))
            .query(&[("from", rfc3339(from)), ("to", rfc3339(to))])
            .bearer_auth(&asker.token)
            .send()
            .await?;
        let status = r.status();
        let list: Value = r.json().await?;
        anyhow::ensure!(status.is_success(), "slots: {status} {list}");
        let page: Vec<String> = list["slots"]
            .as_array()
            .context("slots answer without slots")?
            .iter()
            .filter_map(|s| s["start"].as_str().map(str::to_owned))
            .collect();
        anyhow::ensure!(!page.is_empty(), "the doctor has no free slots");
        slots.extend(page);
        from = to;
    }
    slots.truncate(n);
    Ok(slots)
}

/// What the race measured.
struct Race {
    created: usize,
    conflicts: usize,
    other: usize,
    transport_errors: usize,
    first_unexpected: Option<String>,
    won: HashSet<String>,
    latency: Histogram<u64>,
    wall: Duration,
}

/// Every patient tries to book slot `i mod slots` at the same moment.
async fn race(
    http: &reqwest::Client,
    base: &str,
    patients: &[Signed],
    doctor: &str,
    slots: &[String],
) -> anyhow::Result<Race> {
    let gate = Arc::new(tokio::sync::Barrier::new(patients.len() + 1));
    let mut tasks = tokio::task::JoinSet::new();
    let url = format!("{base}/api/appointments/book");
    for (i, p) in patients.iter().enumerate() {
        let slot = &slots[i % slots.len()];
        let req = http
            .post(&url)
            .bearer_auth(&p.token)
            .header("Idempotency-Key", format!("bench-book-{i}"))
            .json(&json!({"doctor_id": doctor, "start": slot, "reason": "a check-up"}));
        let gate = Arc::clone(&gate);
        tasks.spawn(async move {
            gate.wait().await;
            let sent = Instant::now();
            let answer = match req.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    r.bytes().await.map(|body| (status, body))
                }
                Err(e) => Err(e),
            };
            (answer, sent.elapsed())
        });
    }
    gate.wait().await;
    let started = Instant::now();
    let mut race = Race {
        created: 0,
        conflicts: 0,
        other: 0,
        transport_errors: 0,
        first_unexpected: None,
        won: HashSet::new(),
        latency: histogram()?,
        wall: Duration::ZERO,
    };
    while let Some(joined) = tasks.join_next().await {
        let (answer, took) = joined.context("a booking task panicked")?;
        match answer {
            Ok((status, body)) => {
                race.latency.saturating_record(micros(took));
                match status {
                    201 => {
                        race.created += 1;
                        let a: Value = serde_json::from_slice(&body).unwrap_or_default();
                        if a["status"] == "confirmed"
                            && let Some(start) = a["start"].as_str()
                        {
                            race.won.insert(start.to_owned());
                        }
                    }
                    409 => race.conflicts += 1,
                    _ => {
                        race.other += 1;
                        race.first_unexpected.get_or_insert_with(|| {
                            format!("HTTP {status}: {}", String::from_utf8_lossy(&body))
                        });
                    }
                }
            }
            Err(e) => {
                race.transport_errors += 1;
                race.first_unexpected
                    .get_or_insert_with(|| format!("transport: {e}"));
            }
        }
    }
    race.wall = started.elapsed();
    Ok(race)
}

const CONFIRMED_SQL: &str = "SELECT CAST(COUNT(*) AS BIGINT) FROM appointments \
     WHERE doctor_id = $1 AND status = 'confirmed'";
const OVERLAPS_SQL: &str = "SELECT CAST(COUNT(*) AS BIGINT) FROM appointments a \
     JOIN appointments b ON a.doctor_id = b.doctor_id AND a.id < b.id \
     AND a.start_at < b.end_at AND b.start_at < a.end_at \
     WHERE a.status = 'confirmed' AND b.status = 'confirmed' AND a.doctor_id = $1";

/// (confirmed appointments of `doctor`, pairs of them that overlap), read from the admin
/// service's database.
async fn check_database(db: &Db, doctor: &str) -> (anyhow::Result<i64>, anyhow::Result<i64>) {
    async fn count(db: &Db, sql: &'static str, doctor: &str) -> anyhow::Result<i64> {
        let n = match db {
            Db::Sqlite(p) => sqlx::query_scalar(sql).bind(doctor).fetch_one(p).await,
            Db::Postgres(p) => sqlx::query_scalar(sql).bind(doctor).fetch_one(p).await,
        };
        n.context("querying the admin database")
    }
    (
        count(db, CONFIRMED_SQL, doctor).await,
        count(db, OVERLAPS_SQL, doctor).await,
    )
}

struct OfferLatency {
    /// Request sent → `offered` event received.
    offered: Histogram<u64>,
    /// Request sent → 201 received.
    answered: Histogram<u64>,
}

/// `n` requests to `doctor`, one at a time, each by another patient; for each, the time from
/// sending `POST /api/appointments` until the `offered` event for it arrives over NATS (the
/// event may arrive before the HTTP answer, so arrivals are stamped by a separate task).
async fn offer_latency(
    http: &reqwest::Client,
    carehub: &Carehub,
    patients: &[Signed],
    doctor: &str,
    n: usize,
) -> anyhow::Result<OfferLatency> {
    let nc = crate::cluster::nats_connect(&carehub.nats_url).await?;
    let subject = carehub_nats::appointment::AppointmentEventKind::Offered.subject();
    let mut sub = nc.subscribe(subject).await?;
    nc.flush().await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stamper = tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let at = Instant::now();
            if let Ok(e) = serde_json::from_slice::<AppointmentEvent>(&m.payload)
                && tx.send((e.appointment.id, at)).is_err()
            {
                break;
            }
        }
    });
    let day = today_ms() + 3 * DAY_MS;
    let body = json!({"target": {"doctor": doctor}, "window_start": rfc3339(day + 10 * HOUR_MS),
        "window_end": rfc3339(day + 13 * HOUR_MS), "reason": "a check-up"});
    let url = format!("{}/api/appointments", carehub.base);
    let mut out = OfferLatency {
        offered: histogram()?,
        answered: histogram()?,
    };
    let mut arrived: HashMap<String, Instant> = HashMap::new();
    for i in 0..n {
        let p = &patients[i % patients.len()];
        let sent = Instant::now();
        let r = http
            .post(&url)
            .bearer_auth(&p.token)
            .header("Idempotency-Key", format!("bench-request-{i}"))
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let a: Value = r.json().await?;
        out.answered.saturating_record(micros(sent.elapsed()));
        anyhow::ensure!(status.as_u16() == 201, "request {i}: {status} {a}");
        let id = a["id"].as_str().context("request answer without an id")?;
        let at = loop {
            if let Some(at) = arrived.remove(id) {
                break at;
            }
            let (got, at) = tokio::time::timeout(OFFER_DEADLINE, rx.recv())
                .await
                .with_context(|| format!("no offer for request {i} within {OFFER_DEADLINE:?}"))?
                .context("the NATS subscription ended")?;
            arrived.insert(got, at);
        };
        out.offered
            .saturating_record(micros(at.saturating_duration_since(sent)));
    }
    stamper.abort();
    Ok(out)
}

/// Midnight UTC today, in Unix milliseconds.
pub(super) fn today_ms() -> i64 {
    carehub_runtime::db::now_ms() / DAY_MS * DAY_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_milliseconds_format_as_utc_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(
            rfc3339(4_102_444_800_000 + 3_723_000),
            "2100-01-01T01:02:03Z"
        );
    }
}
