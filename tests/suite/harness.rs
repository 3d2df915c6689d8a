//! Starts a carehub for one test: its own nats-server, its own data directory, its own
//! database on the chosen backend, and the system in-process on port 0.

use crate::support::{nats::NatsServer, postgres, wait};
use carehub::system::{Component, System};
use carehub_runtime::Env;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Storage backend of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one `#[tokio::test]` per backend for each listed scenario `async fn(Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::harness::Backend::Sqlite).await }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::harness::Backend::Postgres).await }
            )*
        }
    };
}

/// One test's carehub.
pub(crate) struct Clinic {
    pub nats: NatsServer,
    pub dir: PathBuf,
    vars: Vec<(String, String)>,
    pub system: System,
    pub base: String,
    pub http: reqwest::Client,
    extra: Vec<System>,
    children: std::sync::Mutex<Vec<Child>>,
}

pub(crate) const PASSWORD: &str = "correct horse battery staple";

impl Clinic {
    /// A carehub with every component in-process.
    pub(crate) async fn start(backend: Backend) -> Self {
        Self::start_with(backend, &[], &Component::ALL).await
    }

    /// A carehub with extra `CAREHUB_*` variables and a chosen set of in-process components.
    pub(crate) async fn start_with(
        backend: Backend,
        extra: &[(&str, &str)],
        components: &[Component],
    ) -> Self {
        // `RUST_LOG=… cargo test -- --nocapture` shows the components' logs.
        if std::env::var_os("RUST_LOG").is_some() {
            carehub_runtime::telemetry::init(false);
        }
        // carehub's NATS users and permissions are on for every test: each component connects
        // as itself, so a missing permission fails the test that needs it.
        let nats = NatsServer::start_secured().await;
        let dir =
            std::env::temp_dir().join(format!("carehub-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let key_file = dir.join("auth-signing-keys.json");
        carehub_auth::keys::ensure_key_file(&key_file).expect("key file");
        let mut vars: Vec<(String, String)> = vec![
            ("CAREHUB_NATS_URL".into(), nats.url()),
            ("CAREHUB_DATA_DIR".into(), dir.display().to_string()),
            (
                "CAREHUB_AUTH_KEY_FILE".into(),
                key_file.display().to_string(),
            ),
            ("CAREHUB_GATEWAY_ADDR".into(), "127.0.0.1:0".into()),
            ("CAREHUB_HUB_ADDR".into(), "127.0.0.1:0".into()),
            ("CAREHUB_HASH_PERMITS".into(), "2".into()),
            ("CAREHUB_RATE_LIMIT_PER_SEC".into(), "100000".into()),
            ("CAREHUB_RATE_LIMIT_BURST".into(), "100000".into()),
            ("CAREHUB_COOKIE_SECURE".into(), "false".into()),
            ("CAREHUB_SHUTDOWN_GRACE".into(), "2".into()),
        ];
        vars.extend(
            nats.credentials()
                .expect("a secured nats-server")
                .client_env(),
        );
        if backend == Backend::Postgres {
            vars.push((
                "CAREHUB_DATABASE_URL".into(),
                postgres::fresh_database().await,
            ));
        }
        for (k, v) in extra {
            vars.retain(|(key, _)| key != k);
            vars.push(((*k).into(), (*v).into()));
        }
        let env = Env::from_pairs(vars.clone());
        let system = System::start(&env, components)
            .await
            .expect("carehub starts");
        let base = system
            .gateway_addr
            .map(|a| format!("http://{a}"))
            .unwrap_or_default();
        Self {
            nats,
            dir,
            vars,
            system,
            base,
            http: client(None),
            extra: Vec::new(),
            children: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The database of `service`, opened as this clinic's services open it (for checks and
    /// changes a test makes behind the services' backs).
    pub(crate) async fn service_db(&self, service: &str) -> carehub_runtime::Db {
        let env = self.env(&[]);
        let common = carehub_runtime::CommonConfig::from_env(&env).expect("config");
        carehub_runtime::Db::connect(
            service,
            common.database_url_for(&env, service).as_deref(),
            &common.data_dir,
        )
        .await
        .expect("the service's database")
    }

    pub(crate) fn env(&self, overrides: &[(&str, &str)]) -> Env {
        let mut env = Env::from_pairs(self.vars.clone());
        for (k, v) in overrides {
            env.set(*k, *v);
        }
        env
    }

    /// Starts more in-process components (a second gateway, another auth instance) sharing
    /// this clinic's NATS and database. Returns the gateway base URL if one was started.
    pub(crate) async fn start_more(
        &mut self,
        overrides: &[(&str, &str)],
        components: &[Component],
    ) -> Option<String> {
        let system = System::start(&self.env(overrides), components)
            .await
            .expect("extra components start");
        let base = system.gateway_addr.map(|a| format!("http://{a}"));
        self.extra.push(system);
        base
    }

    /// Runs `carehub serve <component>` as a child process with this clinic's configuration.
    pub(crate) fn spawn_child(&self, component: &str, overrides: &[(&str, &str)]) -> usize {
        let mut cmd = self.carehub_command(&["serve", component], overrides);
        let mut children = self.children.lock().unwrap();
        let log =
            std::fs::File::create(self.dir.join(format!("{component}-{}.log", children.len())))
                .expect("log");
        cmd.stdout(Stdio::null()).stderr(log);
        children.push(cmd.spawn().expect("spawn carehub"));
        children.len() - 1
    }

    /// Runs the `carehub` binary with `args` (e.g. `["up"]`) as a child process with this
    /// clinic's configuration plus `overrides` (any variables, `RUST_LOG` too). Its stdout
    /// (where logs go) is the returned file; stop it with [`Clinic::kill_child`].
    pub(crate) fn spawn_carehub(
        &self,
        args: &[&str],
        overrides: &[(&str, &str)],
    ) -> (usize, PathBuf) {
        let mut cmd = self.carehub_command(args, overrides);
        let mut children = self.children.lock().unwrap();
        let stem = format!("{}-{}", args.join("-"), children.len());
        let out = self.dir.join(format!("{stem}.out"));
        let stdout = std::fs::File::create(&out).expect("stdout file");
        let stderr = std::fs::File::create(self.dir.join(format!("{stem}.err"))).expect("stderr");
        cmd.stdout(stdout).stderr(stderr);
        children.push(cmd.spawn().expect("spawn carehub"));
        (children.len() - 1, out)
    }

    /// The `carehub` binary with `args`, only this clinic's variables plus `overrides`.
    fn carehub_command(&self, args: &[&str], overrides: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_carehub"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(crate::support::nats::server_var());
        for (k, v) in self
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(overrides.iter().copied())
        {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs the `carehub` binary with `args` to its end (at most 60 s) with this clinic's
    /// configuration plus `overrides`; returns its exit status and output.
    pub(crate) fn run_carehub(
        &self,
        args: &[&str],
        overrides: &[(&str, &str)],
    ) -> std::process::Output {
        let mut child = self
            .carehub_command(args, overrides)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn carehub");
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while child.try_wait().expect("wait").is_none() {
            if std::time::Instant::now() > give_up {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        child.wait_with_output().expect("output")
    }

    /// SIGKILLs a child started with [`Clinic::spawn_child`].
    pub(crate) fn kill_child(&self, i: usize) {
        let mut children = self.children.lock().unwrap();
        let c = &mut children[i];
        c.kill().expect("kill");
        c.wait().expect("reap");
    }

    /// Stops a child started with [`Clinic::spawn_child`] gracefully (SIGTERM) and waits until it
    /// has exited; returns whether it exited successfully.
    pub(crate) async fn stop_child(&self, i: usize) -> bool {
        let pid = self.children.lock().unwrap()[i].id();
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success(), "SIGTERM to child {i}");
        wait::until("the child to exit", Duration::from_secs(30), || async {
            let mut children = self.children.lock().unwrap();
            children[i]
                .try_wait()
                .expect("try_wait")
                .map(|s| s.success())
        })
        .await
    }

    /// Whether a child started with [`Clinic::spawn_child`] has exited (it crashed, or was
    /// killed).
    pub(crate) fn child_exited(&self, i: usize) -> bool {
        let mut children = self.children.lock().unwrap();
        children[i].try_wait().map(|s| s.is_some()).unwrap_or(true)
    }

    /// The websocket URL of the clinic's own hub node.
    pub(crate) fn hub_url(&self) -> String {
        self.hub_urls()[0].clone()
    }

    /// The websocket URLs of every in-process hub node: the clinic's own first, then those
    /// [`Clinic::start_more`] started, in order.
    pub(crate) fn hub_urls(&self) -> Vec<String> {
        std::iter::once(&self.system)
            .chain(&self.extra)
            .filter_map(|s| s.hub_addr)
            .map(|a| format!("ws://{a}/ws"))
            .collect()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A raw NATS client for this clinic's server, connected as carehub's NATS user `user`
    /// (a component's name, or `ops`) with that user's permissions.
    pub(crate) async fn nats_client_as(&self, user: &str) -> async_nats::Client {
        self.nats.client_as(user).await
    }

    /// A raw NATS client with every right (a test-only user), for breaking things on purpose.
    pub(crate) async fn harness_nats_client(&self) -> async_nats::Client {
        self.nats.harness_client().await
    }

    /// Creates an account directly in the auth database (as `carehub admin create-user` does).
    pub(crate) async fn create_user(&self, role: carehub_nats::Role, email: &str) -> Value {
        let env = self.env(&[]);
        let db = carehub::provision::auth_db(&env).await.expect("auth db");
        let user = carehub_auth::create_user(&db, email, PASSWORD, "Test Person", role)
            .await
            .expect("create user");
        db.close().await;
        serde_json::to_value(user).expect("json")
    }

    /// Registers through the API and logs in; returns the session JSON.
    pub(crate) async fn patient(&self, email: &str) -> Value {
        let r = self
            .http
            .post(self.url("/api/auth/register"))
            .json(&json!({"email": email, "password": PASSWORD, "display_name": "Pat Ient"}))
            .send()
            .await
            .expect("register");
        assert_eq!(
            r.status(),
            202,
            "register: {}",
            r.text().await.unwrap_or_default()
        );
        self.login(email, PASSWORD).await
    }

    /// Logs in (refresh token in the body) and returns the session JSON; panics unless 200.
    pub(crate) async fn login(&self, email: &str, password: &str) -> Value {
        let r = self.try_login(&self.http, email, password).await;
        assert_eq!(r.status(), 200, "login failed");
        r.json().await.expect("session json")
    }

    pub(crate) async fn try_login(
        &self,
        http: &reqwest::Client,
        email: &str,
        password: &str,
    ) -> reqwest::Response {
        http.post(self.url("/api/auth/login"))
            .json(&json!({"email": email, "password": password, "refresh_token_in": "body"}))
            .send()
            .await
            .expect("login request")
    }

    /// `GET /api/me` on `base` with `token`.
    pub(crate) async fn me_at(&self, base: &str, token: &str) -> reqwest::Response {
        self.http
            .get(format!("{base}/api/me"))
            .bearer_auth(token)
            .send()
            .await
            .expect("me request")
    }

    /// Sends `$SRV.<verb>.<service>` and gathers replies until `expect` arrived (or 3 s passed).
    pub(crate) async fn srv(&self, verb: &str, service: &str, expect: usize) -> Vec<Value> {
        use futures::StreamExt as _;
        let nc = self.nats_client_as("ops").await;
        let inbox = nc.new_inbox();
        let mut sub = nc.subscribe(inbox.clone()).await.expect("sub");
        let subject = if service.is_empty() {
            format!("$SRV.{verb}")
        } else {
            format!("$SRV.{verb}.{service}")
        };
        nc.publish_with_reply(subject, inbox, "".into())
            .await
            .expect("pub");
        nc.flush().await.expect("flush");
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while out.len() < expect {
            match tokio::time::timeout_at(deadline, sub.next()).await {
                // An empty status message: no instance subscribed (yet).
                Ok(Some(m)) if m.payload.is_empty() => {}
                Ok(Some(m)) => out.push(serde_json::from_slice(&m.payload).expect("srv json")),
                _ => break,
            }
        }
        out
    }

    /// How many requests `endpoint` of each of `instances` instances of `service` has answered
    /// (`$SRV.STATS`), in a stable order (by instance id).
    pub(crate) async fn endpoint_requests(
        &self,
        service: &str,
        endpoint: &str,
        instances: usize,
    ) -> Vec<u64> {
        let mut stats = self.srv("STATS", service, instances).await;
        stats.sort_by_key(|s| s["id"].as_str().unwrap_or_default().to_owned());
        stats
            .iter()
            .map(|s| {
                s["endpoints"]
                    .as_array()
                    .expect("endpoints")
                    .iter()
                    .find(|e| e["name"] == endpoint)
                    .map_or(0, |e| e["num_requests"].as_u64().unwrap_or(0))
            })
            .collect()
    }

    /// Every message currently in `stream` on subjects matching `filter`, decoded as JSON.
    pub(crate) async fn stream_messages(&self, stream: &str, filter: &str) -> Vec<Value> {
        use async_nats::jetstream::consumer::pull;
        use futures::StreamExt as _;
        let js = async_nats::jetstream::new(self.nats_client_as("ops").await);
        let Ok(s) = js.get_stream(stream).await else {
            return Vec::new();
        };
        let consumer = s
            .create_consumer(pull::Config {
                filter_subject: filter.into(),
                ..Default::default()
            })
            .await
            .expect("ephemeral consumer");
        let mut batch = consumer
            .fetch()
            .max_messages(10_000)
            .expires(Duration::from_millis(300))
            .messages()
            .await
            .expect("fetch");
        let mut out = Vec::new();
        while let Some(Ok(m)) = batch.next().await {
            out.push(serde_json::from_slice(&m.payload).expect("event json"));
        }
        out
    }

    /// Subscribes to the password reset tokens published for the notification side (as the
    /// notify user: nobody else may read them).
    pub(crate) async fn reset_subscription(&self) -> (async_nats::Client, async_nats::Subscriber) {
        let nc = self.nats_client_as("notify").await;
        let sub = nc
            .subscribe(carehub_nats::auth::subject::PASSWORD_RESET)
            .await
            .expect("sub");
        nc.flush().await.expect("flush");
        (nc, sub)
    }

    /// Waits until `GET path` on `base` answers `status`.
    pub(crate) async fn wait_status(
        &self,
        base: &str,
        path: &str,
        token: Option<&str>,
        status: u16,
        what: &str,
    ) {
        let http = self.http.clone();
        let url = format!("{base}{path}");
        let token = token.map(str::to_owned);
        wait::until(what, Duration::from_secs(20), || {
            let http = http.clone();
            let url = url.clone();
            let token = token.clone();
            async move {
                let mut req = http.get(&url);
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                let r = req.send().await.ok()?;
                (r.status().as_u16() == status).then_some(())
            }
        })
        .await;
    }
}

impl Drop for Clinic {
    fn drop(&mut self) {
        for c in self
            .children
            .get_mut()
            .map(|c| c.iter_mut())
            .into_iter()
            .flatten()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.system.shutdown_token().cancel();
        for s in &self.extra {
            s.shutdown_token().cancel();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An HTTP client, optionally bound to a local address (e.g. 127.0.0.2).
pub(crate) fn client(local: Option<IpAddr>) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(local)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client")
}

/// The `error.code` of a JSON error body.
pub(crate) async fn error_code(r: reqwest::Response) -> String {
    let body: Value = r.json().await.expect("error json");
    body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_owned()
}

pub(crate) fn token(session: &Value) -> String {
    session["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

pub(crate) fn refresh_token(session: &Value) -> String {
    session["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned()
}

/// A weekly availability with the same hours every day of the week.
pub(crate) fn every_day(start: &str, end: &str) -> Vec<Value> {
    [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ]
    .iter()
    .map(|d| json!({"weekday": d, "start": start, "end": end}))
    .collect()
}

pub(crate) fn unique_email(tag: &str) -> String {
    format!(
        "{tag}-{}@example.org",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// A real SMTP server in a child process, storing each accepted mail as a file.
pub(crate) struct SmtpSink {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl SmtpSink {
    /// Starts the server; it answers the first `fail_first` deliveries with `451`.
    pub(crate) async fn start(fail_first: u32) -> Self {
        let port = crate::support::net::free_port();
        let dir =
            std::env::temp_dir().join(format!("carehub-smtp-{}", uuid::Uuid::new_v4().simple()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(&dir)
            .arg(fail_first.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd (scripts/install-deps.sh installs it)");
        crate::support::wait::listening(
            "the SMTP server to listen",
            port,
            std::time::Duration::from_secs(30),
        )
        .await;
        Self { child, dir, port }
    }

    pub(crate) fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub(crate) fn mails(&self) -> Vec<String> {
        eml_files(&self.dir)
    }

    pub(crate) fn refusals(&self) -> usize {
        std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with("refused-"))
                    .count()
            })
            .unwrap_or(0)
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The contents of every `.eml` file in `dir`.
pub(crate) fn eml_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect()
}
