//! The figures of one run, the targets they are judged against, and their table.

use super::load::Outcome;
use super::scenarios::HashTimes;
use serde::Serialize;
use std::time::Duration;

/// Everything one `carehub-bench` run measured.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) machine: Machine,
    pub(crate) settings: Settings,
    pub(crate) rows: Vec<Row>,
    pub(crate) gateway_added_latency: AddedLatency,
    pub(crate) revocation: RevocationDelay,
    pub(crate) login_vs_theory: LoginTheory,
    pub(crate) storm: Storm,
    pub(crate) targets: Vec<Target>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Machine {
    pub(crate) cpus: usize,
    pub model: String,
    /// `/proc/loadavg` when the run started and when it ended: other work on the machine
    /// competes for the same cores.
    pub(crate) load_before: String,
    pub(crate) load_after: String,
}

impl Machine {
    pub(crate) fn this() -> Self {
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, m)| m.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Self {
            cpus: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            model,
            load_before: load_average(),
            load_after: String::new(),
        }
    }

    /// The first two lines of a report: `<title>: <cpus> CPUs (<model>)` and the load averages.
    ///
    /// # Errors
    /// When `out` fails.
    pub(crate) fn write_header(
        &self,
        out: &mut impl std::fmt::Write,
        title: &str,
    ) -> std::fmt::Result {
        writeln!(out, "{title}: {} CPUs ({})", self.cpus, self.model)?;
        writeln!(
            out,
            "load average before {}, after {}",
            self.load_before, self.load_after
        )
    }

    /// Notes the load average at the end of the run.
    pub(crate) fn finished(&mut self) {
        self.load_after = load_average();
    }
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// How the run was shaped.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Settings {
    pub(crate) concurrency: usize,
    pub(crate) warmup_secs: f64,
    pub(crate) duration_secs: f64,
    pub(crate) hash_permits: usize,
    pub(crate) probe_clients: usize,
    pub(crate) probe_rate: u32,
    pub(crate) revocation_rounds: usize,
}

/// One line of the throughput table.
#[derive(Debug, Serialize)]
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) per_sec: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) errors: u64,
    /// Server CPU per successful request in µs: gateways, auth, and nats-server. Absent when
    /// two loads shared the window (the CPU cannot be split between them).
    pub(crate) gateway_cpu_us: Option<f64>,
    pub(crate) auth_cpu_us: Option<f64>,
    pub(crate) nats_cpu_us: Option<f64>,
    /// The load generator's own CPU per request, for context (it shares the machine).
    pub(crate) bench_cpu_us: Option<f64>,
    /// The first failure, when there were any.
    pub(crate) first_error: Option<String>,
}

impl Row {
    pub(crate) fn new(name: &str, o: &Outcome, with_cpu: bool) -> Self {
        let cpu = |d: Duration| with_cpu.then(|| o.us_per_request(d));
        Self {
            name: name.to_owned(),
            per_sec: o.per_sec(),
            p50_ms: o.ms(0.5),
            p99_ms: o.ms(0.99),
            errors: o.errors,
            gateway_cpu_us: cpu(o.cpu.gateways),
            auth_cpu_us: cpu(o.cpu.auth),
            nats_cpu_us: cpu(o.cpu.nats),
            bench_cpu_us: cpu(o.cpu.bench),
            first_error: o.first_error.clone(),
        }
    }
}

/// p50 of `/api/me` through gateway A minus p50 of `Me {}` sent over NATS, one client each.
#[derive(Debug, Serialize)]
pub(crate) struct AddedLatency {
    pub(crate) http_p50_ms: f64,
    pub(crate) nats_p50_ms: f64,
    pub(crate) added_ms: f64,
}

impl AddedLatency {
    pub(crate) fn new(http: &Outcome, nats: &Outcome) -> Self {
        let (h, n) = (http.ms(0.5), nats.ms(0.5));
        Self {
            http_p50_ms: h,
            nats_p50_ms: n,
            added_ms: h - n,
        }
    }
}

/// Time from a logout acknowledged by gateway A until gateway B refuses the token.
#[derive(Debug, Serialize)]
pub(crate) struct RevocationDelay {
    pub(crate) rounds: usize,
    pub(crate) p50_ms: f64,
    pub(crate) max_ms: f64,
    /// Rounds where B still accepted the token after 5 s.
    pub(crate) missed: usize,
}

impl RevocationDelay {
    pub(crate) fn new(mut delays: Vec<Duration>, missed: usize) -> Self {
        delays.sort();
        let ms = |d: Option<&Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
        Self {
            rounds: delays.len() + missed,
            p50_ms: ms(delays.get(delays.len() / 2)),
            max_ms: ms(delays.last()),
            missed,
        }
    }
}

/// Login throughput against what the argon2 permits allow at best.
#[derive(Debug, Serialize)]
pub(crate) struct LoginTheory {
    /// Median time of one argon2 check on an idle machine.
    pub(crate) hash_ms: f64,
    pub(crate) permits: usize,
    /// argon2 checks per second measured with every permit busy (no HTTP, NATS or database).
    pub(crate) parallel_hash_per_sec: f64,
    /// CPU time of one argon2 check while `permits` of them run at once.
    pub(crate) parallel_hash_cpu_ms: f64,
    /// permits ÷ hash time.
    pub(crate) theory_per_sec: f64,
    pub(crate) measured_per_sec: f64,
    pub(crate) percent: f64,
}

impl LoginTheory {
    pub(crate) fn new(hash: HashTimes, permits: usize, login: &Outcome) -> Self {
        let theory = permits as f64 / hash.single.as_secs_f64();
        Self {
            hash_ms: hash.single.as_secs_f64() * 1000.0,
            permits,
            parallel_hash_per_sec: hash.parallel_per_sec,
            parallel_hash_cpu_ms: hash.parallel_cpu.as_secs_f64() * 1000.0,
            theory_per_sec: theory,
            measured_per_sec: login.per_sec(),
            percent: 100.0 * login.per_sec() / theory,
        }
    }
}

/// `/api/me` latency probe with and without a concurrent login storm.
#[derive(Debug, Serialize)]
pub(crate) struct Storm {
    pub(crate) quiet_p99_ms: f64,
    pub(crate) storm_p99_ms: f64,
    pub(crate) storm_logins_per_sec: f64,
}

/// A target and whether this run met it (every benchmark judges its figures with these).
#[derive(Debug, Serialize)]
pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) measured: String,
    pub(crate) pass: bool,
}

impl Target {
    pub(crate) fn new(name: impl Into<String>, measured: String, pass: bool) -> Self {
        Self {
            name: name.into(),
            measured,
            pass,
        }
    }
}

/// How many of `targets` were missed.
pub(crate) fn missed(targets: &[Target]) -> usize {
    targets.iter().filter(|t| !t.pass).count()
}

/// The `targets:` block of a report: one PASS or FAIL line each, names padded to `width`.
///
/// # Errors
/// When `out` fails.
pub(crate) fn write_targets(
    out: &mut impl std::fmt::Write,
    targets: &[Target],
    width: usize,
) -> std::fmt::Result {
    writeln!(out, "targets:")?;
    for t in targets {
        let verdict = if t.pass { "PASS" } else { "FAIL" };
        writeln!(out, "  {verdict}  {:<width$} {}", t.name, t.measured)?;
    }
    Ok(())
}

impl Report {
    /// Judges the figures against the targets (fills [`Report::targets`]).
    pub(crate) fn judge(&mut self, healthz: &Outcome, me_cached: &Outcome) {
        let ratio = 100.0 * me_cached.per_sec() / healthz.per_sec();
        let added = self.gateway_added_latency.added_ms;
        let login = self.login_vs_theory.percent;
        let storm = self.storm.storm_p99_ms;
        self.targets = vec![
            Target::new(
                "/api/me (cache on) >= 25% of /healthz throughput",
                format!("{ratio:.1}%"),
                ratio >= 25.0,
            ),
            Target::new(
                "gateway added latency <= 0.5 ms",
                format!("{added:.3} ms"),
                added <= 0.5,
            ),
            Target::new(
                "login throughput >= 90% of permits / hash time",
                format!("{login:.1}%"),
                login >= 90.0,
            ),
            Target::new(
                "/api/me p99 during login storm < 10 ms",
                format!("{storm:.2} ms"),
                storm < 10.0,
            ),
        ];
    }
}

/// The human-readable report.
impl std::fmt::Display for Report {
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.settings;
        writeln!(out)?;
        self.machine.write_header(out, "carehub-bench")?;
        writeln!(
            out,
            "{} clients per scenario, {:.0} s warm-up + {:.0} s measured; {} hash permits\n",
            s.concurrency, s.warmup_secs, s.duration_secs, s.hash_permits
        )?;
        writeln!(
            out,
            "{:<40} {:>9} {:>8} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9}",
            "scenario",
            "req/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "gw µs",
            "auth µs",
            "nats µs",
            "bench µs"
        )?;
        let cpu = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
        for r in &self.rows {
            writeln!(
                out,
                "{:<40} {:>9.1} {:>8.3} {:>8.3} {:>6} {:>9} {:>9} {:>9} {:>9}",
                r.name,
                r.per_sec,
                r.p50_ms,
                r.p99_ms,
                r.errors,
                cpu(r.gateway_cpu_us),
                cpu(r.auth_cpu_us),
                cpu(r.nats_cpu_us),
                cpu(r.bench_cpu_us)
            )?;
        }
        writeln!(
            out,
            "(µs columns: CPU time per successful request of the gateways, auth, nats-server and this load generator)"
        )?;
        for r in self.rows.iter().filter(|r| r.errors > 0) {
            let first = r.first_error.as_deref().unwrap_or("?");
            writeln!(
                out,
                "  {} errors in '{}', the first: {first}",
                r.errors, r.name
            )?;
        }
        writeln!(out)?;
        let a = &self.gateway_added_latency;
        writeln!(
            out,
            "gateway added latency (p50, 1 client): {:.3} ms HTTP /api/me - {:.3} ms NATS Me = {:.3} ms",
            a.http_p50_ms, a.nats_p50_ms, a.added_ms
        )?;
        let r = &self.revocation;
        writeln!(
            out,
            "revocation delay (logout on A until B answers 401, {} rounds): p50 {:.2} ms, max {:.2} ms, {} missed",
            r.rounds, r.p50_ms, r.max_ms, r.missed
        )?;
        let l = &self.login_vs_theory;
        writeln!(
            out,
            "login vs theory: argon2 check {:.1} ms, {} permits -> {:.1} logins/s at best; measured {:.1}/s = {:.1}%",
            l.hash_ms, l.permits, l.theory_per_sec, l.measured_per_sec, l.percent
        )?;
        writeln!(
            out,
            "  (argon2 alone with all {} permits busy: {:.1} checks/s, {:.1} ms CPU each; logins reach {:.1}% of that rate)",
            l.permits,
            l.parallel_hash_per_sec,
            l.parallel_hash_cpu_ms,
            100.0 * l.measured_per_sec / l.parallel_hash_per_sec
        )?;
        let st = &self.storm;
        writeln!(
            out,
            "/api/me probe ({} clients, {} req/s): p99 {:.2} ms quiet, {:.2} ms during a login storm of {:.1} logins/s\n",
            s.probe_clients,
            s.probe_rate,
            st.quiet_p99_ms,
            st.storm_p99_ms,
            st.storm_logins_per_sec
        )?;
        write_targets(out, &self.targets, 52)
    }
}
