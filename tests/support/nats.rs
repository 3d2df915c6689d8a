//! A private nats-server with JetStream, on a free port and a fresh store directory.
//!
//! Each [`NatsServer`] owns one `nats-server` child process. Its stdout and stderr go to
//! `nats.log` in its temporary directory; when a test panics while the server is alive, the log
//! is printed, so a failure shows what the server saw.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

use super::net::free_port;
pub use carehub::natsd::{NatsCredentials, conf};

/// How long nats-server gets to accept connections after it was spawned.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// How often to try a fresh port when nats-server dies at start (e.g. the port was taken).
const START_ATTEMPTS: usize = 3;

/// A running `nats-server -a 127.0.0.1 -p <port> -js -sd <dir>`.
///
/// Dropping it kills the server (SIGKILL) and removes its directory. Should the test process
/// die without unwinding, a small watchdog process does the same.
pub struct NatsServer {
    port: u16,
    dir: PathBuf,
    config: Option<PathBuf>,
    /// The config enables JetStream and names the store itself (`-js -sd` would clash).
    config_has_store: bool,
    env: Vec<(String, String)>,
    args: Vec<String>,
    credentials: Option<NatsCredentials>,
    /// The password of the test-only `harness` user (see [`NatsServer::harness_client`]).
    harness_password: Option<String>,
    server: Option<Child>,
    watchdog: Option<Child>,
}

/// How to start a server from one of carehub's own configuration files (`nats/conf`).
pub struct Secured<'a> {
    /// The main file's text, e.g. [`conf::SINGLE`] or one of [`conf::NODES`].
    pub main: &'a str,
    /// Passwords of carehub's users (the same for every node of a cluster).
    pub credentials: NatsCredentials,
    /// More environment for nats-server (e.g. `NATS_ROUTES` of a cluster node).
    pub env: Vec<(String, String)>,
    /// More command-line arguments (e.g. `--cluster nats://127.0.0.1:<port>`).
    pub args: Vec<String>,
}

impl NatsServer {
    /// Starts a nats-server with JetStream on a free port and waits until it greets clients.
    ///
    /// # Panics
    ///
    /// Panics when `nats-server` cannot be found or does not become ready within 30 s; the
    /// message includes the server's log.
    pub async fn start() -> NatsServer {
        Self::start_inner(None).await
    }

    /// Like [`start`](Self::start), with `conf` as the server's configuration file.
    ///
    /// The harness still sets the host, port, JetStream and store directory on the command
    /// line, and nats-server lets the command line win, so `conf` may carry a production
    /// `port`/`listen` line. `conf` must not open other listeners on fixed ports (`http`,
    /// `cluster`, `leafnodes`, `websocket`).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start), including when nats-server rejects `conf`.
    pub async fn start_with_config(conf: &str) -> NatsServer {
        Self::start_inner(Some(conf)).await
    }

    /// Starts a server with carehub's NATS users and permissions (`nats/conf/permissions.conf`)
    /// and freshly generated passwords (see [`credentials`](Self::credentials)).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub async fn start_secured() -> NatsServer {
        Self::start_secured_with(Secured {
            main: conf::SINGLE,
            credentials: NatsCredentials::generate(),
            env: Vec::new(),
            args: Vec::new(),
        })
        .await
    }

    /// Starts a server from `setup`: its main file written beside `permissions.conf` with the
    /// JetStream store moved into the server's directory, a free client port, a random
    /// monitoring port, and the passwords in the environment.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub async fn start_secured_with(setup: Secured<'_>) -> NatsServer {
        let dir = unique_temp_dir("carehub-nats");
        let config =
            carehub::natsd::write_config(&dir.join("conf"), setup.main, &dir.join("jetstream"))
                .unwrap_or_else(|e| panic!("cannot write the NATS config: {e:#}"));
        // A test-only user with every right, so a test can break things on purpose (delete a
        // stream); carehub's own users and rules stay exactly as shipped.
        let permissions = dir.join("conf").join("permissions.conf");
        let shipped = std::fs::read_to_string(&permissions).expect("read permissions.conf");
        let with_harness = shipped.replacen(
            "users: [",
            "users: [\n    { user: harness, password: $NATS_HARNESS_PASSWORD }",
            1,
        );
        assert_ne!(shipped, with_harness, "permissions.conf has a users list");
        std::fs::write(&permissions, with_harness).expect("write permissions.conf");
        let harness_password = carehub::natsd::random_nats_password();
        let mut env = setup.credentials.server_env();
        env.push(("NATS_HARNESS_PASSWORD".into(), harness_password.clone()));
        env.extend(setup.env);
        // A random monitoring port unless the caller chose one.
        let mut args = if setup.args.iter().any(|a| a == "-m") {
            Vec::new()
        } else {
            vec!["-m".to_owned(), "-1".to_owned()]
        };
        args.extend(setup.args);
        Self::run(NatsServer {
            port: 0,
            dir,
            config: Some(config),
            config_has_store: true,
            env,
            args,
            credentials: Some(setup.credentials),
            harness_password: Some(harness_password),
            server: None,
            watchdog: None,
        })
        .await
    }

    async fn start_inner(conf: Option<&str>) -> NatsServer {
        let dir = unique_temp_dir("carehub-nats");
        let config = conf.map(|text| {
            let path = dir.join("nats.conf");
            fs::write(&path, text)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            path
        });
        Self::run(NatsServer {
            port: 0,
            dir,
            config,
            config_has_store: false,
            env: Vec::new(),
            args: Vec::new(),
            credentials: None,
            harness_password: None,
            server: None,
            watchdog: None,
        })
        .await
    }

    async fn run(mut server: NatsServer) -> NatsServer {
        for attempt in 1..=START_ATTEMPTS {
            server.port = free_port();
            match server.spawn_and_wait().await {
                Ok(()) => return server,
                // Only a server that died can be retried on another port; a hung one cannot.
                Err(Failure::Exited(_)) if attempt < START_ATTEMPTS => {}
                Err(failure) => server.fail(&failure),
            }
        }
        unreachable!("the last start attempt either returns or panics")
    }

    /// The URL clients connect to, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The passwords of carehub's users, when started with [`start_secured`](Self::start_secured).
    pub fn credentials(&self) -> Option<&NatsCredentials> {
        self.credentials.as_ref()
    }

    /// Connects as carehub's NATS user `user` (with its inbox prefix `_INBOX_<user>`), or
    /// without credentials on a server started without users.
    ///
    /// # Panics
    ///
    /// When the connection fails or `user` is not one of carehub's users.
    pub async fn client_as(&self, user: &str) -> async_nats::Client {
        self.options_as(user)
            .connect(self.url())
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {} as {user}: {e}", self.url()))
    }

    /// Connection options for carehub's NATS user `user` (see [`client_as`](Self::client_as)).
    ///
    /// # Panics
    ///
    /// When `user` is not one of carehub's users.
    pub fn options_as(&self, user: &str) -> async_nats::ConnectOptions {
        let opts = async_nats::ConnectOptions::new().custom_inbox_prefix(format!("_INBOX_{user}"));
        match &self.credentials {
            None => opts,
            Some(c) => {
                let password = c
                    .password(user)
                    .unwrap_or_else(|| panic!("{user} is not a carehub NATS user"));
                opts.user_and_password(user.to_owned(), password.to_owned())
            }
        }
    }

    /// Connects as the test-only `harness` user, which may do anything (on a server without
    /// users, without credentials). Only for breaking things on purpose.
    ///
    /// # Panics
    ///
    /// When the connection fails.
    pub async fn harness_client(&self) -> async_nats::Client {
        let opts = match &self.harness_password {
            Some(p) => {
                async_nats::ConnectOptions::new().user_and_password("harness".into(), p.clone())
            }
            None => async_nats::ConnectOptions::new(),
        };
        opts.connect(self.url())
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {} as harness: {e}", self.url()))
    }

    /// The port the server listens on; it stays the same across [`restart`](Self::restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's socket address, e.g. the target of a [`TcpProxy`](super::net::TcpProxy).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The JetStream store directory, kept across [`restart`](Self::restart).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("jetstream")
    }

    /// Everything the server wrote to stdout and stderr so far, across restarts.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
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
        if let Some(watchdog) = self.watchdog.take() {
            reap(watchdog);
        }
        if let Some(server) = self.server.take() {
            reap(server);
        }
    }

    /// Kills the server if it runs, then starts it again on the same port with the same store
    /// directory and waits until it greets clients.
    ///
    /// # Panics
    ///
    /// Panics when the server does not come back within 30 s (for instance because another
    /// process took the port meanwhile); the message includes the server's log.
    pub async fn restart(&mut self) {
        self.kill();
        if let Err(failure) = self.spawn_and_wait().await {
            self.fail(&failure);
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("nats.log")
    }

    async fn spawn_and_wait(&mut self) -> Result<(), Failure> {
        let binary = nats_server_binary();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| Failure::Spawn(format!("cannot open the log file: {e}")))?;
        let _ = writeln!(
            log,
            "--- harness: starting nats-server on port {} ---",
            self.port
        );
        let stderr = log
            .try_clone()
            .map_err(|e| Failure::Spawn(format!("cannot share the log file: {e}")))?;

        let mut command = Command::new(&binary);
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        command.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        if !self.config_has_store {
            command.args(["-js", "-sd"]).arg(self.store_dir());
        }
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        let child = command
            .spawn()
            .map_err(|e| Failure::Spawn(format!("cannot run {}: {e}", binary.display())))?;
        self.watchdog = spawn_watchdog(child.id(), &self.dir);
        self.server = Some(child);

        let give_up = tokio::time::Instant::now() + READY_DEADLINE;
        loop {
            if let Some(status) = self
                .server
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.kill();
                return Err(Failure::Exited(status.to_string()));
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

    fn fail(&mut self, failure: &Failure) -> ! {
        self.kill();
        let what = match failure {
            Failure::Spawn(reason) => reason.clone(),
            Failure::Exited(status) => format!("nats-server exited at start ({status})"),
            Failure::NotReady => format!("nats-server not ready within {READY_DEADLINE:?}"),
        };
        panic!(
            "{what}; port {}, directory {}\n--- nats-server log ---\n{}",
            self.port,
            self.dir.display(),
            self.log()
        );
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if std::thread::panicking() && self.server.is_some() {
            eprintln!(
                "--- nats-server log ({}) ---\n{}--- end of nats-server log ---",
                self.url(),
                self.log()
            );
        }
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

enum Failure {
    Spawn(String),
    Exited(String),
    NotReady,
}

/// Whether something on `addr` accepts a connection and opens with NATS's `INFO` line.
async fn greets_as_nats(addr: SocketAddr) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let mut greeting = [0u8; 5];
        stream.read_exact(&mut greeting).await.ok()?;
        Some(&greeting == b"INFO ")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Some(true))
    )
}

/// `nats-server` from PATH, else Debian's /usr/sbin/nats-server (not on a normal user's PATH).
fn nats_server_binary() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"))
}

/// Kills the server and removes `dir` if this test process dies without dropping the server.
/// Returns `None` when the watchdog cannot be started: the harness still works without it.
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

/// Creates a new, empty directory under the system's temporary directory.
fn unique_temp_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}
