//! CPU time of processes, from `/proc/<pid>/stat` (user + system time of every thread).

use anyhow::Context as _;
use std::time::Duration;

/// `/proc` reports times in clock ticks of `USER_HZ`, which is 100 on every mainstream Linux
/// architecture (it is part of the user-space ABI, independent of the kernel's `HZ`).
pub(super) const TICKS_PER_SEC: u64 = 100;

/// The processes whose CPU time a benchmark attributes to the server side.
#[derive(Debug, Clone)]
pub(crate) struct Procs {
    pub(crate) auth: u32,
    /// Every `carehub serve gateway` child (idle ones add next to nothing).
    pub(crate) gateways: Vec<u32>,
    pub(crate) nats: u32,
}

/// Cumulative CPU ticks at one instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuSample {
    auth: u64,
    gateways: u64,
    nats: u64,
    bench: u64,
}

/// CPU time spent between two samples.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuDelta {
    pub(crate) auth: Duration,
    pub(crate) gateways: Duration,
    pub(crate) nats: Duration,
    /// This process: the load generator.
    pub(crate) bench: Duration,
}

impl Procs {
    /// Reads the current CPU times.
    ///
    /// # Errors
    /// When a process has gone away or `/proc` is unreadable (not Linux).
    pub(crate) fn sample(&self) -> anyhow::Result<CpuSample> {
        let mut gateways = 0;
        for pid in &self.gateways {
            gateways += ticks(&pid.to_string())?;
        }
        Ok(CpuSample {
            auth: ticks(&self.auth.to_string())?,
            gateways,
            nats: ticks(&self.nats.to_string())?,
            bench: ticks("self")?,
        })
    }
}

impl CpuSample {
    /// The CPU time spent from `earlier` to `self`.
    pub(crate) fn since(&self, earlier: &CpuSample) -> CpuDelta {
        let d = |now: u64, then: u64| {
            Duration::from_millis(now.saturating_sub(then) * 1000 / TICKS_PER_SEC)
        };
        CpuDelta {
            auth: d(self.auth, earlier.auth),
            gateways: d(self.gateways, earlier.gateways),
            nats: d(self.nats, earlier.nats),
            bench: d(self.bench, earlier.bench),
        }
    }
}

/// The whole machine's CPU time at one instant, from the `cpu` line of `/proc/stat`, in ticks:
/// what every process and the kernel spent (`busy`), and what the hypervisor gave to other
/// machines while this one wanted to run (`steal`), which no process is charged for.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MachineCpu {
    busy: u64,
    steal: u64,
    all: u64,
}

/// The machine's CPU spent between two [`MachineCpu`] samples.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MachineDelta {
    pub(crate) busy: Duration,
    /// Share of all CPU time in the window taken by other machines (0 to 1).
    pub(crate) steal_share: f64,
}

impl MachineCpu {
    /// Reads `/proc/stat`.
    ///
    /// # Errors
    /// When `/proc/stat` is unreadable (not Linux) or has no `cpu` line.
    pub(crate) fn sample() -> anyhow::Result<Self> {
        let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        parse_machine(&stat).context("unexpected format of /proc/stat")
    }

    pub(crate) fn since(&self, earlier: &Self) -> MachineDelta {
        let all = self.all.saturating_sub(earlier.all).max(1);
        MachineDelta {
            busy: Duration::from_millis(
                self.busy.saturating_sub(earlier.busy) * 1000 / TICKS_PER_SEC,
            ),
            steal_share: self.steal.saturating_sub(earlier.steal) as f64 / all as f64,
        }
    }
}

/// `cpu  user nice system idle iowait irq softirq steal …`: busy is user + nice + system +
/// irq + softirq (guest time is already inside user).
fn parse_machine(stat: &str) -> Option<MachineCpu> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    let busy = at(0) + at(1) + at(2) + at(5) + at(6);
    Some(MachineCpu {
        busy,
        steal: at(7),
        all: busy + at(3) + at(4) + at(7),
    })
}

/// utime + stime of `/proc/<pid>/stat`, in ticks.
pub(super) fn ticks(pid: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat(&stat).with_context(|| format!("unexpected format of {path}"))
}

/// The command name (field 2) is in parentheses and may contain spaces, so fields are counted
/// from the last `)`: what follows starts at field 3 (state); utime and stime are fields 14, 15.
fn parse_stat(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utime_and_stime_are_read_after_a_command_name_with_spaces() {
        let stat = "4242 (carehub (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 37 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat(stat), Some(287));
    }

    #[test]
    fn the_machine_line_splits_into_busy_steal_and_all() {
        let stat = "cpu  100 5 30 800 7 2 3 50 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        let m = parse_machine(stat).unwrap();
        assert_eq!((m.busy, m.steal, m.all), (140, 50, 997));
        let later = MachineCpu {
            busy: 240,
            steal: 150,
            all: 1397,
        };
        let d = later.since(&m);
        assert_eq!(d.busy, Duration::from_secs(1));
        assert!((d.steal_share - 0.25).abs() < 1e-9);
        assert!(parse_machine("intr 1 2 3").is_none());
    }

    #[test]
    fn this_process_has_a_readable_cpu_time() {
        assert!(ticks("self").is_ok());
    }
}
