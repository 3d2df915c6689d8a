//! `carehub-bench hub`: the hub under load (see docs/BENCHMARKS.md). Many authenticated
//! sockets on one hub node opened by a separate load-client process and the node's memory per
//! socket; a final broadcast that must reach every socket; chat delivery latency at a paced rate
//! on one node and across two; what the gateway's `/ws` forwarding costs per socket; and call
//! setup time with two WebRTC peers.
//!
//! Map (this file starts the system, reusing the booking bench's [`Carehub`], drives the steps
//! and prints the figures):
//! - [`client`] the load client process and the bench's handle on it;
//! - [`ws`] the websocket client both use;
//! - [`chat`] the latency run;
//! - [`call`] the call setup;
//! - [`bursts`] bursts of frames and the cross-node presence push (`--bursts`).

mod bursts;
mod call;
mod chat;
pub(crate) mod client;
mod ws;

use super::booking::system::{Carehub, Storage};
use super::booking::{
    Signed, create_accounts, doctor_email, free_slots, ms, patient_email, set_availability,
    sign_in, wait_doctors_applied,
};
use super::report::{self, Machine, Target};
use anyhow::Context as _;
use client::{LoadClient, Opened, Plan};
use serde::Serialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Target: memory per idle connection, in bytes (12.5 KB).
const MEMORY_TARGET: f64 = 12_500.0;
/// Target: chat delivery p99, in milliseconds.
const LATENCY_TARGET_MS: f64 = 20.0;
/// Sockets the acceptance asks for on one node.
const CONNECTIONS_TARGET: usize = 19_500;
/// How long the broadcast may take to reach every socket before the rest count as missed.
const BROADCAST_WAIT_SECS: u64 = 60;
/// Pause before reading a process's resident memory, so freed buffers settle.
const SETTLE: Duration = Duration::from_secs(2);

/// Options of `carehub-bench hub`.
#[derive(Debug, clap::Args)]
pub(crate) struct HubArgs {
    /// Authenticated sockets the load client opens on one hub node.
    #[arg(long, default_value_t = 19_500)]
    pub(crate) connections: usize,
    /// Patients the sockets belong to (socket i signs in as patient i mod users).
    #[arg(long, default_value_t = 10)]
    pub users: usize,
    /// Sockets the load client opens at once (each is a token check in auth).
    #[arg(long, default_value_t = 64)]
    pub(crate) in_flight: usize,
    /// Sockets per source address (127.0.0.2, .3, ...).
    #[arg(long, default_value_t = 1_000)]
    pub(crate) per_source: usize,
    /// Chat messages per second of the latency runs.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) rate: u32,
    /// Sending sockets (one patient and room each) sharing that rate.
    #[arg(long, default_value_t = 4)]
    pub(crate) senders: usize,
    /// Measured seconds per latency run.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) duration: f64,
    /// Warm-up seconds before each measured window.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) warmup: f64,
    /// Sockets opened directly and through the gateway for the per-socket comparison.
    #[arg(long, default_value_t = 2_000)]
    pub(crate) gateway_sockets: usize,
    /// Calls set up one after another for the call setup time.
    #[arg(long, default_value_t = 5)]
    pub(crate) call_rounds: usize,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Exit with an error when a target is missed.
    #[arg(long)]
    pub(crate) strict: bool,
    /// Instead of the load runs: bursts of every kind and size from a reading client, directly
    /// and through the gateway, with the default frame limits; then presence propagation.
    #[arg(long)]
    pub(crate) bursts: bool,
    /// Repetitions of each burst (and presence changes) with `--bursts`.
    #[arg(long, default_value_t = 20)]
    pub(crate) repeat: usize,
}

/// Chat latency of one run.
#[derive(Debug, Serialize)]
pub(crate) struct Latency {
    pub(crate) name: String,
    pub(crate) sent: u64,
    pub(crate) delivered: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) rate: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    /// CPU per delivered message, µs, per process.
    pub(crate) cpu_us: Vec<(String, f64)>,
}

impl Latency {
    fn new(name: &str, r: &chat::ChatRun) -> Self {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / r.delivered.max(1) as f64;
        Self {
            name: name.to_owned(),
            sent: r.sent,
            delivered: r.delivered,
            errors: r.errors,
            first_error: r.first_error.clone(),
            rate: r.sent as f64 / r.window.as_secs_f64(),
            p50_ms: ms(&r.latency, 0.5),
            p99_ms: ms(&r.latency, 0.99),
            max_ms: r.latency.max() as f64 / 1000.0,
            cpu_us: r.cpu.iter().map(|(n, d)| (n.clone(), per(*d))).collect(),
        }
    }
}

/// Sockets through one path (direct or the gateway).
#[derive(Debug, Serialize)]
pub(crate) struct PathCost {
    pub(crate) name: String,
    pub(crate) opened: Opened,
    /// Resident memory added per socket, bytes: hub node, and gateway (0 for direct).
    pub(crate) hub_bytes: f64,
    pub(crate) gateway_bytes: f64,
}

/// Everything one `carehub-bench hub` run measured.
#[derive(Debug, Serialize)]
pub(crate) struct Figures {
    pub(crate) machine: Machine,
    pub(crate) connections: usize,
    pub users: usize,
    pub(crate) mass: Opened,
    pub(crate) hub_open_files_limit: String,
    pub(crate) rss_at_0: u64,
    pub(crate) rss_at_n: u64,
    pub(crate) bytes_per_connection: f64,
    pub(crate) broadcast_reached: usize,
    pub(crate) broadcast_closed: usize,
    pub(crate) broadcast_ms: f64,
    pub(crate) rss_after_broadcast: u64,
    pub(crate) chat: Vec<Latency>,
    pub(crate) paths: Vec<PathCost>,
    pub(crate) call_rounds_ms: Vec<f64>,
    pub(crate) call_setup_median_ms: f64,
    /// Invite until the caller got `call_accept`: the hub's signaling alone.
    pub(crate) call_accept_median_ms: f64,
    /// A doctor's socket opening or closing on one node until the patient on the other got
    /// the `presence` push, ms (empty when it could not be measured).
    pub(crate) presence_ms: Vec<f64>,
    pub(crate) targets: Vec<Target>,
}

fn step(what: &str) {
    tracing::info!("hub bench: {what}");
}

/// Runs the benchmark and prints the figures.
///
/// # Errors
/// When the system cannot be started or driven, on Ctrl-C, or (with `--strict`) when a
/// target is missed.
pub(crate) async fn run(args: HubArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.users > 0 && args.senders > 0 && args.connections > 0 && args.rate > 0,
        "--users, --senders, --connections and --rate must be at least 1"
    );
    let signal = carehub_runtime::shutdown::on_signal();
    if args.bursts {
        return tokio::select! {
            r = Box::pin(bursts::run(&args)) => r,
            () = signal.cancelled() => anyhow::bail!("interrupted; the benchmark's processes were stopped"),
        };
    }
    let figures = tokio::select! {
        r = Box::pin(measure(&args)) => r?,
        () = signal.cancelled() => anyhow::bail!("interrupted; the benchmark's processes were stopped"),
    };
    print!("{figures}");
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&figures)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    let missed = report::missed(&figures.targets);
    if args.strict && missed > 0 {
        anyhow::bail!("{missed} of {} targets missed", figures.targets.len());
    }
    Ok(())
}

/// Resident memory of a process in bytes (`VmRSS` of `/proc/<pid>/status`).
fn rss(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .with_context(|| format!("no VmRSS in {path}"))
}

/// The soft open-files limit of a process, from `/proc/<pid>/limits`.
fn open_files_limit(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned))
        })
        .unwrap_or_else(|| "?".to_owned())
}

async fn settled_rss(pid: u32) -> anyhow::Result<u64> {
    tokio::time::sleep(SETTLE).await;
    rss(pid)
}

fn median(v: &[f64]) -> f64 {
    let mut sorted = v.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

pub(crate) fn secs(v: f64, name: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero() || name == "--warmup")
        .with_context(|| format!("{name} must be a positive number of seconds"))
}

/// Books the first free slots of `doctor` (from tomorrow), one per patient; returns the rooms.
async fn book_rooms(
    http: &reqwest::Client,
    base: &str,
    patients: &[Signed],
    doctor: &str,
) -> anyhow::Result<Vec<String>> {
    let slots = free_slots(http, base, &patients[0], doctor, patients.len()).await?;
    let mut rooms = Vec::new();
    for (i, (p, start)) in patients.iter().zip(&slots).enumerate() {
        let r = http
            .post(format!("{base}/api/appointments/book"))
            .bearer_auth(&p.token)
            .header("Idempotency-Key", format!("bench-hub-{i}"))
            .json(&json!({"doctor_id": doctor, "start": start, "reason": "a video visit"}))
            .send()
            .await?;
        let status = r.status();
        let a: Value = r.json().await?;
        anyhow::ensure!(
            status.as_u16() == 201 && a["status"] == "confirmed",
            "booking: {status} {a}"
        );
        rooms.push(
            a["id"]
                .as_str()
                .context("booking without an id")?
                .to_owned(),
        );
    }
    Ok(rooms)
}

struct System {
    carehub: Carehub,
    hub_a: SocketAddr,
    hub_b: SocketAddr,
    gateway: SocketAddr,
    doctor: Signed,
    /// Patients whose sockets the load client opens, and their rooms.
    crowd: Vec<Signed>,
    crowd_rooms: Vec<String>,
    /// Patients who send in the latency runs, and their rooms.
    chatters: Vec<Signed>,
    chat_rooms: Vec<String>,
}

impl System {
    fn pid(&self, name: &str) -> anyhow::Result<u32> {
        self.carehub
            .rig
            .pid(name)
            .with_context(|| format!("no child called {name}"))
    }
}

async fn start(args: &HubArgs, http: &reqwest::Client) -> anyhow::Result<System> {
    step("starting nats-server");
    let mut carehub = Carehub::prepare(&Storage::Sqlite, true).await?;
    let (port_a, port_b) = (super::cluster::free_port()?, super::cluster::free_port()?);
    let hub_a = SocketAddr::from(([127, 0, 0, 1], port_a));
    let hub_b = SocketAddr::from(([127, 0, 0, 1], port_b));
    carehub
        .rig
        .set_var("CAREHUB_HUB_URL", format!("ws://{hub_a}/ws"));
    // One socket sends hundreds of chat messages per second here; the per-socket frame limit
    // protects a deployment from a misbehaving client and would cap the measurement. The
    // burst runs measure that limit, so they keep it.
    if !args.bursts {
        carehub.rig.set_var("CAREHUB_HUB_FRAMES_PER_SEC", "1000000");
        carehub.rig.set_var("CAREHUB_HUB_FRAME_BURST", "1000000");
    }
    // The rooms are tomorrow's appointments; calls are allowed around them.
    carehub.rig.set_var("CAREHUB_CALL_EARLY", "259200");
    carehub.rig.set_var("CAREHUB_CALL_LATE", "259200");
    // Sockets must outlive the run without renewing their tokens.
    carehub.rig.set_var("CAREHUB_ACCESS_TOKEN_TTL", "7200");
    let patients = args.users + args.senders;
    step(&format!("writing {patients} patient and 2 doctor accounts"));
    create_accounts(&carehub, patients).await?;
    step("starting auth, doctor, patient, notify, admin, gateway and two hub nodes");
    carehub.start_services(http).await?;
    for (name, addr) in [("hub-a", hub_a), ("hub-b", hub_b)] {
        carehub.rig.spawn_carehub(
            name,
            "hub",
            &[
                ("CAREHUB_HUB_ADDR", addr.to_string()),
                ("CAREHUB_HUB_NODE_ID", name.to_owned()),
            ],
        )?;
        carehub.rig.wait_for_port(addr.port()).await?;
    }
    let base = carehub.base.clone();
    let gateway: SocketAddr = base
        .trim_start_matches("http://")
        .parse()
        .context("the gateway's address")?;

    let doctor = sign_in(http, &base, &doctor_email(0)).await?;
    let version = set_availability(http, &base, &doctor, true).await?;
    wait_doctors_applied(&carehub.nats_url, &[(doctor.id.clone(), version)]).await?;
    step(&format!(
        "signing in {patients} patients and booking their rooms"
    ));
    let mut all = Vec::new();
    for i in 0..patients {
        all.push(sign_in(http, &base, &patient_email(i)).await?);
    }
    let mut rooms = book_rooms(http, &base, &all, &doctor.id).await?;
    let chatters = all.split_off(args.users);
    let chat_rooms = rooms.split_off(args.users);
    Ok(System {
        carehub,
        hub_a,
        hub_b,
        gateway,
        doctor,
        crowd: all,
        crowd_rooms: rooms,
        chatters,
        chat_rooms,
    })
}

async fn measure(args: &HubArgs) -> anyhow::Result<Figures> {
    let warmup = secs(args.warmup, "--warmup")?;
    let duration = secs(args.duration, "--duration")?;
    let mut machine = Machine::this();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .context("building the HTTP client")?;
    let sys = start(args, &http).await?;
    let hub_a_pid = sys.pid("hub-a")?;
    let tokens: Vec<String> = sys.crowd.iter().map(|p| p.token.clone()).collect();

    // 1. Many sockets on hub A, from another process.
    step(&format!(
        "{} sockets on hub A from the load client",
        args.connections
    ));
    let rss_at_0 = settled_rss(hub_a_pid).await?;
    let plan = Plan {
        addr: sys.hub_a,
        tokens: tokens.clone(),
        connections: args.connections,
        in_flight: args.in_flight,
        per_source: args.per_source,
    };
    let (mut crowd, mass) =
        LoadClient::start(&plan, &sys.carehub.rig.dir().join("client.log")).await?;
    let rss_at_n = settled_rss(hub_a_pid).await?;
    let bytes_per_connection = rss_at_n.saturating_sub(rss_at_0) as f64 / mass.opened.max(1) as f64;

    step("broadcast: the doctor writes into every crowd room");
    let mut doctor = ws::signed_in(sys.hub_a, None, &sys.doctor.token).await?;
    let sent_at = client::unix_us();
    for (i, room) in sys.crowd_rooms.iter().enumerate() {
        ws::send(
            &mut doctor,
            &json!({"type": "chat_send", "room": room, "client_id": format!("broadcast-{i}"),
                "body": "The clinic is closed tomorrow."}),
        )
        .await?;
    }
    let reached = crowd
        .await_reached(mass.opened, BROADCAST_WAIT_SECS)
        .await?;
    let broadcast_ms = reached.last_arrival_unix_us.saturating_sub(sent_at) as f64 / 1000.0;
    let rss_after_broadcast = rss(hub_a_pid)?;
    let hub_open_files_limit = open_files_limit(hub_a_pid);
    drop(doctor);
    crowd.stop().await;

    // 2. Chat latency.
    let procs = |names: &[&str]| -> anyhow::Result<Vec<(String, u32)>> {
        names
            .iter()
            .map(|n| Ok(((*n).to_owned(), sys.pid(n)?)))
            .collect()
    };
    let mut chat_runs = Vec::new();
    for (name, send_to, recv_at, tag, names) in [
        (
            "one node",
            sys.hub_a,
            sys.hub_a,
            "one",
            vec!["hub-a", "nats-server"],
        ),
        (
            "two nodes",
            sys.hub_a,
            sys.hub_b,
            "two",
            vec!["hub-a", "hub-b", "nats-server"],
        ),
        (
            "one node via the gateway",
            sys.gateway,
            sys.gateway,
            "gw",
            vec!["hub-a", "gateway", "nats-server"],
        ),
    ] {
        step(&format!("chat latency, {name}, {} messages/s", args.rate));
        let mut senders = Vec::new();
        for (p, room) in sys.chatters.iter().zip(&sys.chat_rooms) {
            senders.push((ws::signed_in(send_to, None, &p.token).await?, room.clone()));
        }
        let receiver = ws::signed_in(recv_at, None, &sys.doctor.token).await?;
        let run = chat::run(
            senders,
            receiver,
            args.rate,
            warmup,
            duration,
            &procs(&names)?,
            tag,
        )
        .await?;
        chat_runs.push(Latency::new(name, &run));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // 3. Sockets direct and through the gateway.
    let gateway_pid = sys.pid("gateway")?;
    let mut paths = Vec::new();
    for (name, addr) in [
        ("direct to hub A", sys.hub_a),
        ("through the gateway", sys.gateway),
    ] {
        step(&format!("{} sockets {name}", args.gateway_sockets));
        let (hub0, gw0) = (settled_rss(hub_a_pid).await?, rss(gateway_pid)?);
        let plan = Plan {
            addr,
            tokens: tokens.clone(),
            connections: args.gateway_sockets,
            in_flight: args.in_flight,
            per_source: args.per_source,
        };
        let log = sys
            .carehub
            .rig
            .dir()
            .join(format!("client-{}.log", paths.len()));
        let (client, opened) = LoadClient::start(&plan, &log).await?;
        let (hub1, gw1) = (settled_rss(hub_a_pid).await?, rss(gateway_pid)?);
        client.stop().await;
        let n = opened.opened.max(1) as f64;
        paths.push(PathCost {
            name: name.to_owned(),
            hub_bytes: hub1.saturating_sub(hub0) as f64 / n,
            gateway_bytes: if addr == sys.gateway {
                gw1.saturating_sub(gw0) as f64 / n
            } else {
                0.0
            },
            opened,
        });
    }

    // 4. Call setup.
    step(&format!("call setup, {} rounds", args.call_rounds));
    let mut call_rounds_ms = Vec::new();
    let mut accepted_ms = Vec::new();
    for _ in 0..args.call_rounds {
        let (took, accepted) = call::round(
            sys.hub_a,
            &sys.doctor.token,
            &sys.chatters[0].token,
            &sys.chat_rooms[0],
        )
        .await?;
        call_rounds_ms.push(took.as_secs_f64() * 1000.0);
        accepted_ms.push(accepted.as_secs_f64() * 1000.0);
    }
    let call_setup_median_ms = median(&call_rounds_ms);
    let call_accept_median_ms = median(&accepted_ms);
    step("presence propagation across the two nodes, 10 rounds");
    let presence_ms = bursts::presence_propagation(
        sys.hub_a,
        sys.hub_b,
        &sys.chatters[0].token,
        &sys.doctor.token,
        &sys.chat_rooms[0],
        10,
    )
    .await
    .unwrap_or_else(|e| {
        tracing::warn!(error = %e, "presence propagation not measured");
        Vec::new()
    });
    machine.finished();
    drop(sys);

    let mut f = Figures {
        machine,
        connections: args.connections,
        users: args.users,
        mass,
        hub_open_files_limit,
        rss_at_0,
        rss_at_n,
        bytes_per_connection,
        broadcast_reached: reached.sockets,
        broadcast_closed: reached.closed,
        broadcast_ms,
        rss_after_broadcast,
        chat: chat_runs,
        paths,
        call_rounds_ms,
        call_setup_median_ms,
        call_accept_median_ms,
        presence_ms,
        targets: Vec::new(),
    };
    f.judge();
    Ok(f)
}

impl Figures {
    fn judge(&mut self) {
        let mut t = Vec::new();
        t.push(Target::new(
            format!("authenticated sockets on one node >= {CONNECTIONS_TARGET}"),
            self.mass.opened.to_string(),
            self.mass.opened >= CONNECTIONS_TARGET && self.mass.failed == 0,
        ));
        t.push(Target::new(
            format!("memory per connection <= {:.1} KB", MEMORY_TARGET / 1000.0),
            format!("{:.1} KB", self.bytes_per_connection / 1000.0),
            self.bytes_per_connection <= MEMORY_TARGET,
        ));
        t.push(Target::new(
            "final broadcast reaches every socket",
            format!("{} of {}", self.broadcast_reached, self.mass.opened),
            self.broadcast_reached == self.mass.opened && self.mass.opened > 0,
        ));
        for c in self.chat.iter().filter(|c| !c.name.contains("gateway")) {
            t.push(Target::new(
                format!("chat p99 <= {LATENCY_TARGET_MS} ms, {}", c.name),
                format!("{:.2} ms", c.p99_ms),
                c.p99_ms <= LATENCY_TARGET_MS && c.delivered == c.sent && c.sent > 0,
            ));
        }
        let p99 = bursts::percentile(&self.presence_ms, 0.99);
        t.push(Target::new(
            "presence pushed across nodes, p99 <= 1000 ms",
            format!("{p99:.1} ms ({} changes)", self.presence_ms.len()),
            p99 <= 1_000.0,
        ));
        self.targets = t;
    }
}

/// The human-readable report.
impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        self.machine.write_header(f, "carehub-bench hub")?;
        let o = &self.mass;
        writeln!(
            f,
            "\n{} sockets of {} patients on hub node A, from a load client process on {} source addresses (127.0.0.2 and up)",
            self.connections, self.users, o.sources
        )?;
        writeln!(
            f,
            "  authenticated {} ({} failed) in {:.1} s; setup p50 {:.2} ms, p99 {:.2} ms; open-files limit: hub {}, client {}",
            o.opened,
            o.failed,
            o.secs,
            o.setup_p50_ms,
            o.setup_p99_ms,
            self.hub_open_files_limit,
            o.open_files_limit
        )?;
        if let Some(e) = &o.first_error {
            writeln!(f, "  first failure: {e}")?;
        }
        writeln!(
            f,
            "  hub RSS {:.1} MiB at 0 -> {:.1} MiB at {} = {:.0} bytes ({:.1} KB) per connection",
            mib(self.rss_at_0),
            mib(self.rss_at_n),
            o.opened,
            self.bytes_per_connection,
            self.bytes_per_connection / 1000.0
        )?;
        writeln!(
            f,
            "  broadcast (one chat message per room): reached {} of {} sockets in {:.1} ms ({} closed); hub RSS after {:.1} MiB",
            self.broadcast_reached,
            o.opened,
            self.broadcast_ms,
            self.broadcast_closed,
            mib(self.rss_after_broadcast)
        )?;
        writeln!(
            f,
            "\n{:<26} {:>7} {:>9} {:>6} {:>8} {:>8} {:>8}  CPU µs per message",
            "chat delivery", "msg/s", "delivered", "errors", "p50 ms", "p99 ms", "max ms"
        )?;
        for c in &self.chat {
            let cpu: Vec<String> = c
                .cpu_us
                .iter()
                .map(|(n, us)| format!("{n} {us:.0}"))
                .collect();
            writeln!(
                f,
                "{:<26} {:>7.1} {:>9} {:>6} {:>8.2} {:>8.2} {:>8.2}  {}",
                c.name,
                c.rate,
                format!("{}/{}", c.delivered, c.sent),
                c.errors,
                c.p50_ms,
                c.p99_ms,
                c.max_ms,
                cpu.join(", ")
            )?;
            if let Some(e) = &c.first_error {
                writeln!(f, "  first error: {e}")?;
            }
        }
        writeln!(
            f,
            "\n{:<22} {:>7} {:>12} {:>12} {:>14} {:>14}",
            "sockets", "opened", "setup p50 ms", "setup p99 ms", "hub B/socket", "gateway B/socket"
        )?;
        for p in &self.paths {
            writeln!(
                f,
                "{:<22} {:>7} {:>12.2} {:>12.2} {:>14.0} {:>14.0}",
                p.name,
                p.opened.opened,
                p.opened.setup_p50_ms,
                p.opened.setup_p99_ms,
                p.hub_bytes,
                p.gateway_bytes
            )?;
        }
        if let (Some(direct), Some(gw)) = (
            self.chat.iter().find(|c| c.name == "one node"),
            self.chat.iter().find(|c| c.name.contains("gateway")),
        ) {
            writeln!(
                f,
                "gateway /ws forwarding: +{:.2} ms chat p50 (both ends through it), +{:.2} ms setup p50, {:.0} bytes per socket",
                gw.p50_ms - direct.p50_ms,
                self.paths.get(1).map_or(0.0, |p| p.opened.setup_p50_ms)
                    - self.paths.first().map_or(0.0, |p| p.opened.setup_p50_ms),
                self.paths.get(1).map_or(0.0, |p| p.gateway_bytes)
            )?;
        }
        let rounds: Vec<String> = self
            .call_rounds_ms
            .iter()
            .map(|r| format!("{r:.1}"))
            .collect();
        writeln!(
            f,
            "\ncall setup, invite -> both WebRTC peers connected on loopback: median {:.1} ms ({} rounds: {} ms)",
            self.call_setup_median_ms,
            rounds.len(),
            rounds.join(", ")
        )?;
        writeln!(
            f,
            "  of which invite -> call_accept back at the caller (hub signaling only): median {:.2} ms",
            self.call_accept_median_ms
        )?;
        writeln!(
            f,
            "\npresence across nodes, socket opened or closed -> push at the other participant: p50 {:.1} ms, p99 {:.1} ms ({} changes)",
            bursts::percentile(&self.presence_ms, 0.5),
            bursts::percentile(&self.presence_ms, 0.99),
            self.presence_ms.len()
        )?;
        writeln!(f)?;
        report::write_targets(f, &self.targets, 48)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_resident_size_and_an_open_files_limit() {
        assert!(rss(std::process::id()).unwrap() > 0);
        assert!(open_files_limit(std::process::id()).parse::<u64>().unwrap() > 0);
    }

    #[test]
    fn the_median_of_an_odd_and_an_even_count() {
        assert!((median(&[5.0, 1.0, 3.0]) - 3.0).abs() < f64::EPSILON);
        assert!((median(&[4.0, 1.0]) - 4.0).abs() < f64::EPSILON);
        assert!(median(&[]).abs() < f64::EPSILON);
    }
}
