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
    fn this_process_has_a_readable_cpu_time() {
        assert!(ticks("self").is_ok());
    }
}
