//! `carehub up` needs a NATS server: use the configured one, or start a local child with
//! carehub's NATS users (`nats/conf/permissions.conf`) and freshly generated passwords.
//!
//! The configuration files of `nats/conf` are embedded here, so the binary can write them out
//! wherever it runs; the test harness starts its servers from the same files.

use anyhow::Context as _;
use rand::Rng as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The NATS configuration files of `nats/conf`.
pub mod conf {
    /// The `authorization` block: one user per component, plus `ops`.
    pub const PERMISSIONS: &str = include_str!("../nats/conf/permissions.conf");
    /// One server with JetStream.
    pub const SINGLE: &str = include_str!("../nats/conf/single.conf");
    /// The three nodes of a cluster (`nats-1`..`nats-3`).
    pub const NODES: [&str; 3] = [
        include_str!("../nats/conf/node-1.conf"),
        include_str!("../nats/conf/node-2.conf"),
        include_str!("../nats/conf/node-3.conf"),
    ];
}

/// The users `permissions.conf` defines: one per component, and `ops` for operators.
pub const USERS: [&str; 8] = [
    "auth", "doctor", "patient", "notify", "admin", "hub", "gateway", "ops",
];

/// A password for every user of [`USERS`]; the `Debug` output hides them.
#[derive(Clone)]
pub struct NatsCredentials {
    passwords: Vec<(&'static str, String)>,
}

impl std::fmt::Debug for NatsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsCredentials")
            .field(
                "users",
                &self.passwords.iter().map(|(u, _)| u).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// A random password nats-server reads back as a string: 32 letters and digits, starting with
/// a letter (a config value that starts with a digit may parse as a number).
pub fn random_nats_password() -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    std::iter::once(LETTERS[rng.random_range(0..LETTERS.len())])
        .chain((0..31).map(|_| ALNUM[rng.random_range(0..ALNUM.len())]))
        .map(char::from)
        .collect()
}

impl NatsCredentials {
    /// Fresh random passwords for every user.
    pub fn generate() -> Self {
        Self {
            passwords: USERS.iter().map(|u| (*u, random_nats_password())).collect(),
        }
    }

    /// The password of `user`, if it is one of [`USERS`].
    pub fn password(&self, user: &str) -> Option<&str> {
        self.passwords
            .iter()
            .find(|(u, _)| *u == user)
            .map(|(_, p)| p.as_str())
    }

    /// What nats-server reads: `NATS_<USER>_PASSWORD` for every user.
    pub fn server_env(&self) -> Vec<(String, String)> {
        self.passwords
            .iter()
            .map(|(u, p)| {
                (
                    format!("NATS_{}_PASSWORD", u.to_ascii_uppercase()),
                    p.clone(),
                )
            })
            .collect()
    }

    /// What carehub reads: `CAREHUB_<COMPONENT>_NATS_USER` and `_NATS_PASSWORD` for every user,
    /// so each component connects as itself.
    pub fn client_env(&self) -> Vec<(String, String)> {
        self.passwords
            .iter()
            .flat_map(|(u, p)| {
                let upper = u.to_ascii_uppercase();
                [
                    (format!("CAREHUB_{upper}_NATS_USER"), (*u).to_owned()),
                    (format!("CAREHUB_{upper}_NATS_PASSWORD"), p.clone()),
                ]
            })
            .collect()
    }
}

/// Writes `permissions.conf` and `main` (one of [`conf`]) as `nats.conf` into `dir`, with the
/// JetStream store moved to `store_dir`; returns the path of `nats.conf`.
///
/// # Errors
/// When `main` has no `store_dir` line or a file cannot be written.
pub fn write_config(dir: &Path, main: &str, store_dir: &Path) -> anyhow::Result<PathBuf> {
    let mut replaced = false;
    let text: Vec<String> = main
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("store_dir:") {
                replaced = true;
                format!("  store_dir: {:?}", store_dir.display().to_string())
            } else {
                line.to_owned()
            }
        })
        .collect();
    anyhow::ensure!(replaced, "the NATS configuration has no store_dir line");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("permissions.conf"), conf::PERMISSIONS)
        .with_context(|| format!("writing {}/permissions.conf", dir.display()))?;
    let path = dir.join("nats.conf");
    std::fs::write(&path, text.join("\n") + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// A nats-server started by this process; killed when dropped.
#[derive(Debug)]
pub struct ChildNats {
    child: Child,
    /// The passwords it was started with; components connect with [`NatsCredentials::client_env`].
    pub credentials: NatsCredentials,
}

impl Drop for ChildNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn host_port(url: &str) -> Option<(String, u16)> {
    let first = url.split(',').next()?.trim();
    let rest = first.split("://").nth(1).unwrap_or(first);
    let hostport = rest.rsplit('@').next()?;
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "4222"));
    Some((host.to_owned(), port.trim_end_matches('/').parse().ok()?))
}

fn reachable(host: &str, port: u16) -> bool {
    use std::net::ToSocketAddrs as _;
    (host, port)
        .to_socket_addrs()
        .ok()
        .into_iter()
        .flatten()
        .any(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_millis(300)).is_ok())
}

/// The nats-server executable: on PATH, or Debian's `/usr/sbin/nats-server`.
pub fn nats_server_binary() -> Option<PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nats-server"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    candidates
        .into_iter()
        .chain([PathBuf::from("/usr/sbin/nats-server")])
        .find(|p| p.is_file())
}

/// Returns `None` when a server answers at `url`; otherwise starts `nats-server` on the URL's
/// port (loopback only) with JetStream storing in `<data_dir>/nats` and carehub's users with
/// passwords generated now (kept in memory only; see [`ChildNats::credentials`]).
///
/// # Errors
/// When no server answers and none can be started.
pub fn ensure(url: &str, data_dir: &Path) -> anyhow::Result<Option<ChildNats>> {
    let (host, port) =
        host_port(url).with_context(|| format!("CAREHUB_NATS_URL: cannot parse '{url}'"))?;
    if reachable(&host, port) {
        return Ok(None);
    }
    let local = matches!(host.as_str(), "127.0.0.1" | "localhost" | "::1");
    anyhow::ensure!(
        local,
        "no NATS server answers at {url}, and it is not local, so none can be started here"
    );
    let bin = nats_server_binary().context(
        "no NATS server answers and nats-server is not installed (apt-get install nats-server, or set CAREHUB_NATS_URL)",
    )?;
    let store = data_dir.join("nats");
    std::fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;
    let config = write_config(&data_dir.join("nats-conf"), conf::SINGLE, &store)?;
    let credentials = NatsCredentials::generate();
    let log = std::fs::File::create(data_dir.join("nats-server.log"))?;
    let child = Command::new(&bin)
        .arg("-c")
        .arg(&config)
        // The monitoring port of the file (8222) would clash with other local servers.
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-m", "-1"])
        .envs(credentials.server_env())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let started = ChildNats { child, credentials };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reachable("127.0.0.1", port) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "nats-server did not start; see {}/nats-server.log",
            data_dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::info!(
        port,
        "started a local nats-server with JetStream and a generated password per component"
    );
    Ok(Some(started))
}

#[cfg(test)]
mod tests {
    use super::{NatsCredentials, USERS, host_port, random_nats_password, write_config};
    use std::path::Path;

    #[test]
    fn generated_passwords_start_with_a_letter_and_differ() {
        let a = random_nats_password();
        assert_eq!(a.len(), 32);
        assert!(a.starts_with(|c: char| c.is_ascii_alphabetic()));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, random_nats_password());
        let creds = NatsCredentials::generate();
        assert_eq!(creds.server_env().len(), USERS.len());
        assert_eq!(creds.client_env().len(), 2 * USERS.len());
        assert!(!format!("{creds:?}").contains(creds.password("auth").unwrap()));
    }

    #[test]
    fn written_configs_keep_everything_but_the_store() {
        let dir = std::env::temp_dir().join(format!("carehub-natsd-{}", std::process::id()));
        let path = write_config(&dir, super::conf::NODES[1], Path::new("/x/y")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("store_dir: \"/x/y\""), "{text}");
        assert!(text.contains("server_name: nats-2"));
        assert!(dir.join("permissions.conf").is_file());
        assert!(write_config(&dir, "port: 1", Path::new("/x")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nats_urls_yield_host_and_port() {
        assert_eq!(
            host_port("nats://127.0.0.1:4222"),
            Some(("127.0.0.1".into(), 4222))
        );
        assert_eq!(
            host_port("nats://u:p@localhost:5000,nats://x:1"),
            Some(("localhost".into(), 5000))
        );
        assert_eq!(host_port("localhost"), Some(("localhost".into(), 4222)));
    }
}
