//! A private nats-server with JetStream, on a free port and a fresh store directory, started
//! by the one launcher (`carehub_natsd::Launch`).
//!
//! Each [`NatsServer`] owns one `nats-server` child process. Its stdout and stderr go to
//! `nats-server.log` in its temporary directory; when a test panics while the server is alive,
//! the log is printed, so a failure shows what the server saw.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use carehub_natsd::{ChildNats, Launch};
pub(crate) use carehub_natsd::{NatsCredentials, conf};

/// Fails every test that starts a server unless the nats-server it would run (see
/// [`carehub_natsd::nats_server_binary`]; `scripts/test.sh` sets `CAREHUB_NATS_SERVER`) is
/// exactly the release carehub is tested on, so a run on another release cannot pass for one
/// on this.
fn require_tested_version() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        let binary = carehub_natsd::nats_server_binary().map_err(|e| format!("{e:#}"))?;
        let found = carehub_natsd::nats_server_version(&binary).map_err(|e| format!("{e:#}"))?;
        let wanted = carehub_natsd::NATS_SERVER_VERSION;
        if found == wanted {
            return Ok(());
        }
        Err(format!(
            "{} is nats-server {}.{}.{}; the suite runs on {}.{}.{} only ({})",
            binary.display(),
            found.0,
            found.1,
            found.2,
            wanted.0,
            wanted.1,
            wanted.2,
            carehub_natsd::NATS_SERVER_INSTALL
        ))
    });
    if let Err(why) = checked {
        panic!("{why}");
    }
}

/// `CAREHUB_NATS_SERVER` as this process has it, for a `carehub` child run with a cleared
/// environment (so that its `carehub up` starts the same nats-server as the suite).
pub(crate) fn server_var() -> Option<(&'static str, std::ffi::OsString)> {
    std::env::var_os(carehub_natsd::NATS_SERVER_VAR).map(|v| (carehub_natsd::NATS_SERVER_VAR, v))
}

/// A running `nats-server -a 127.0.0.1 -p <port>` with JetStream.
///
/// Dropping it kills the server (SIGKILL) and removes its directory. Should the test process
/// die without unwinding, a small watchdog process does the same.
pub(crate) struct NatsServer {
    child: ChildNats,
    /// The password of the test-only `harness` user (see [`NatsServer::harness_client`]).
    harness_password: Option<String>,
}

/// How to start a server from one of carehub's own configuration files (`nats/conf`).
pub(crate) struct Secured<'a> {
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
    pub(crate) async fn start() -> NatsServer {
        let dir = unique_temp_dir("carehub-nats");
        Self::launch(dir.clone(), Launch::plain(&dir), None).await
    }

    /// Like [`start`](Self::start), with `conf` as the server's configuration file.
    ///
    /// The launcher still sets the host, port, JetStream and store directory on the command
    /// line, and nats-server lets the command line win, so `conf` may carry a production
    /// `port`/`listen` line. `conf` must not open other listeners on fixed ports (`http`,
    /// `cluster`, `leafnodes`, `websocket`).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start), including when nats-server rejects `conf`.
    pub(crate) async fn start_with_config(conf: &str) -> NatsServer {
        let dir = unique_temp_dir("carehub-nats");
        Self::launch(dir.clone(), Launch::with_config(&dir, conf), None).await
    }

    /// Starts a server with carehub's NATS users and permissions (`nats/conf/permissions.conf`)
    /// and freshly generated passwords (see [`credentials`](Self::credentials)).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub(crate) async fn start_secured() -> NatsServer {
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
    /// monitoring port unless `setup.args` chooses one, and the passwords in the environment.
    /// A test-only `harness` user with every right is added (see
    /// [`harness_client`](Self::harness_client)); carehub's own users and rules stay exactly as
    /// shipped.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub(crate) async fn start_secured_with(setup: Secured<'_>) -> NatsServer {
        let dir = unique_temp_dir("carehub-nats");
        let harness_password = carehub_natsd::random_nats_password();
        let launch = Launch::carehub(&dir, setup.main, setup.credentials)
            .unrestricted_user("harness", harness_password.clone())
            .env(setup.env)
            .args(setup.args);
        Self::launch(dir, launch, Some(harness_password)).await
    }

    async fn launch(dir: PathBuf, launch: Launch, harness_password: Option<String>) -> NatsServer {
        require_tested_version();
        match launch.watchdog().start().await {
            Ok(child) => NatsServer {
                child,
                harness_password,
            },
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                panic!("{e:#}");
            }
        }
    }

    /// The URL clients connect to, `nats://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> String {
        self.child.url()
    }

    /// The passwords of carehub's users, when started with [`start_secured`](Self::start_secured).
    pub(crate) fn credentials(&self) -> Option<&NatsCredentials> {
        self.child.credentials()
    }

    /// Connects as carehub's NATS user `user` (with its inbox prefix `_INBOX_<user>`), or
    /// without credentials on a server started without users.
    ///
    /// # Panics
    ///
    /// When the connection fails or `user` is not one of carehub's users.
    pub(crate) async fn client_as(&self, user: &str) -> async_nats::Client {
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
    pub(crate) fn options_as(&self, user: &str) -> async_nats::ConnectOptions {
        let opts = async_nats::ConnectOptions::new().custom_inbox_prefix(format!("_INBOX_{user}"));
        match self.credentials() {
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
    pub(crate) async fn harness_client(&self) -> async_nats::Client {
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
    pub(crate) fn port(&self) -> u16 {
        self.child.port()
    }

    /// The server's socket address, e.g. the target of a [`TcpProxy`](super::net::TcpProxy).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.child.addr()
    }

    /// The JetStream store directory, kept across [`restart`](Self::restart).
    pub(crate) fn store_dir(&self) -> PathBuf {
        self.child.store_dir()
    }

    /// Everything the server wrote to stdout and stderr so far, across restarts.
    pub(crate) fn log(&self) -> String {
        self.child.log()
    }

    /// Whether the server process is running (it may have died on its own).
    pub(crate) fn is_running(&mut self) -> bool {
        self.child.is_running()
    }

    /// Sends `signal` (`STOP`, `CONT`) to the server process.
    pub(crate) fn signal(&self, signal: &str) {
        let pid = self.child.pid().expect("the server runs");
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill -{signal} {pid}");
    }

    /// Kills the server with SIGKILL, as a crash would, and reaps it. Does nothing if it is not
    /// running. The port and the JetStream store are kept for [`restart`](Self::restart).
    pub(crate) fn kill(&mut self) {
        self.child.kill();
    }

    /// Kills the server if it runs, then starts it again on the same port with the same store
    /// directory and waits until it greets clients.
    ///
    /// # Panics
    ///
    /// Panics when the server does not come back within 30 s (for instance because another
    /// process took the port meanwhile); the message includes the server's log.
    pub(crate) async fn restart(&mut self) {
        if let Err(e) = self.child.restart().await {
            panic!("{e:#}");
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.pid().is_some() {
            eprintln!(
                "--- nats-server log ({}) ---\n{}--- end of nats-server log ---",
                self.url(),
                self.log()
            );
        }
        self.child.kill();
        let _ = std::fs::remove_dir_all(self.child.dir());
    }
}

/// Creates a new, empty directory under the system's temporary directory.
fn unique_temp_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}
