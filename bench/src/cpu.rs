//! CPU time of processes, from `/proc/<pid>/stat` (user + system time of every thread).

use anyhow::Context as _;
use std::collections::HashMap;
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
    /// More processes, each group reported under its name (empty for the login benchmark).
    pub(crate) groups: Vec<Group>,
}

/// Processes whose CPU time is reported together under one name.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub(crate) name: String,
    pub(crate) members: Members,
}

/// Which processes a [`Group`] holds.
#[derive(Debug, Clone)]
pub(crate) enum Members {
    /// These processes; each must still run at every sample.
    Pids(Vec<u32>),
    /// A process and its children as they are at each sample (PostgreSQL's postmaster forks
    /// one backend per connection). A child that starts inside a window counts in full, one
    /// that exits inside it is lost: connection pools keep theirs open.
    Family(u32),
    /// Every process of this user id at each sample, counted like [`Members::Family`].
    User(u32),
}

impl Group {
    pub(crate) fn new(name: &str, members: Members) -> Self {
        Self {
            name: name.to_owned(),
            members,
        }
    }

    /// Cumulative CPU ticks of each member now.
    fn sample(&self) -> anyhow::Result<HashMap<u32, u64>> {
        match &self.members {
            Members::Pids(pids) => pids
                .iter()
                .map(|pid| Ok((*pid, ticks(&pid.to_string())?)))
                .collect(),
            Members::Family(root) => Ok(scan(|pid, ppid, _| pid == *root || ppid == *root)),
            Members::User(uid) => Ok(scan(|_, _, owner| owner == *uid)),
        }
    }
}

/// Cumulative CPU ticks at one instant.
#[derive(Debug, Clone)]
pub(crate) struct CpuSample {
    auth: u64,
    gateways: u64,
    nats: u64,
    bench: u64,
    groups: Vec<HashMap<u32, u64>>,
}

/// CPU time spent between two samples.
#[derive(Debug, Clone, Default)]
pub(crate) struct CpuDelta {
    pub(crate) auth: Duration,
    pub(crate) gateways: Duration,
    pub(crate) nats: Duration,
    /// This process: the load generator.
    pub(crate) bench: Duration,
    /// Each of [`Procs::groups`], in order.
    pub(crate) groups: Vec<(String, Duration)>,
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
            groups: self
                .groups
                .iter()
                .map(Group::sample)
                .collect::<anyhow::Result<_>>()?,
        })
    }

    /// The names of [`Procs::groups`], as [`CpuDelta::groups`] reports them.
    fn group_names(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().map(|g| g.name.as_str())
    }
}

impl CpuSample {
    /// The CPU time spent from `earlier` to `self`; `procs` names the groups.
    pub(crate) fn since(&self, earlier: &CpuSample, procs: &Procs) -> CpuDelta {
        CpuDelta {
            auth: spent(self.auth, earlier.auth),
            gateways: spent(self.gateways, earlier.gateways),
            nats: spent(self.nats, earlier.nats),
            bench: spent(self.bench, earlier.bench),
            groups: procs
                .group_names()
                .zip(self.groups.iter().zip(&earlier.groups))
                .map(|(name, (now, then))| (name.to_owned(), spent(members_ticks(now, then), 0)))
                .collect(),
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

/// `now - then` ticks as a duration.
fn spent(now: u64, then: u64) -> Duration {
    Duration::from_millis(now.saturating_sub(then) * 1000 / TICKS_PER_SEC)
}

/// The ticks a group's members spent between two samples: what each member present `now` spent
/// since `then`, in full for a member that was not there yet.
fn members_ticks(now: &HashMap<u32, u64>, then: &HashMap<u32, u64>) -> u64 {
    now.iter()
        .map(|(pid, t)| t.saturating_sub(then.get(pid).copied().unwrap_or(0)))
        .sum()
}

/// The CPU ticks of every process for which `keep(pid, parent pid, owner uid)` holds. Processes
/// that exit while `/proc` is read are skipped.
fn scan(keep: impl Fn(u32, u32, u32) -> bool) -> HashMap<u32, u64> {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let uid = e.metadata().ok()?.uid();
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let (ppid, ticks) = parse_stat_fields(&stat)?;
            keep(pid, ppid, uid).then_some((pid, ticks))
        })
        .collect()
}

/// The user id of `name` in `/etc/passwd`.
pub(crate) fn user_id(name: &str) -> Option<u32> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    parse_passwd_uid(&passwd, name)
}

/// `name:password:uid:...` lines: the uid of `name`.
fn parse_passwd_uid(passwd: &str, name: &str) -> Option<u32> {
    passwd.lines().find_map(|l| {
        let mut fields = l.split(':');
        (fields.next()? == name).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}

/// utime + stime of `/proc/<pid>/stat`, in ticks.
pub(super) fn ticks(pid: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat(&stat).with_context(|| format!("unexpected format of {path}"))
}

fn parse_stat(stat: &str) -> Option<u64> {
    parse_stat_fields(stat).map(|(_, ticks)| ticks)
}

/// (parent pid, utime + stime). The command name (field 2) is in parentheses and may contain
/// spaces, so fields are counted from the last `)`: what follows starts at field 3 (state);
/// the parent is field 4, utime and stime are fields 14, 15.
fn parse_stat_fields(stat: &str) -> Option<(u32, u64)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(1);
    let ppid: u32 = fields.next()?.parse().ok()?;
    let mut fields = fields.skip(9);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((ppid, utime + stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utime_and_stime_are_read_after_a_command_name_with_spaces() {
        let stat = "4242 (carehub (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 37 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat(stat), Some(287));
        assert_eq!(parse_stat_fields(stat), Some((1, 287)));
    }

    #[test]
    fn a_group_counts_each_member_since_the_last_sample_and_a_newcomer_in_full() {
        let then = HashMap::from([(10, 100), (11, 50), (12, 7)]);
        let now = HashMap::from([(10, 130), (11, 50), (13, 20)]);
        assert_eq!(members_ticks(&now, &then), 30 + 20);
    }

    #[test]
    fn the_uid_of_a_user_is_read_from_passwd_lines() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\npostgres:x:105:111::/var/lib/postgresql:/bin/bash\n";
        assert_eq!(parse_passwd_uid(passwd, "postgres"), Some(105));
        assert_eq!(parse_passwd_uid(passwd, "root"), Some(0));
        assert_eq!(parse_passwd_uid(passwd, "post"), None);
    }

    #[test]
    fn this_process_is_found_among_the_children_of_its_parent() {
        let parent = parse_stat_fields(&std::fs::read_to_string("/proc/self/stat").unwrap())
            .unwrap()
            .0;
        let family = scan(|pid, ppid, _| pid == parent || ppid == parent);
        assert!(family.contains_key(&std::process::id()));
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
