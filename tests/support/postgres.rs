//! One private PostgreSQL cluster per test process, and a fresh empty database per caller.
//!
//! The cluster starts on first use (`initdb` into a temporary directory, `pg_ctl start` on a
//! free port, listening on 127.0.0.1 only, durability off for speed) and is shared by every
//! test in the process. Statics are never dropped, so a detached watchdog stops the cluster
//! and deletes its directory once the test process has exited.
//!
//! Escape hatch: when `CAREHUB_TEST_PG_URL` holds the admin URL of an existing server (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`), databases are created there instead and no
//! cluster is started. CI does not use it.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::{AssertSqlSafe, Connection as _, PgConnection};

use super::net::free_port;

/// The variable naming an existing server to use instead of a private cluster.
pub(crate) const EXTERNAL_SERVER_VAR: &str = "CAREHUB_TEST_PG_URL";

/// How long `pg_ctl` may take to bring the server up.
const START_TIMEOUT_SECS: u64 = 60;
/// How often to try another port when the server cannot start (e.g. the port was taken).
const START_ATTEMPTS: usize = 3;

/// Creates a new, empty database and returns its URL,
/// `postgres://postgres@127.0.0.1:<port>/<unique name>`.
///
/// The first call in a test process starts the shared cluster (a few seconds); later calls
/// and concurrent calls from other tests and runtimes wait for that one start.
///
/// # Panics
///
/// Panics when the cluster cannot be started (the message includes its log, and every later
/// call fails fast with the same message) or the database cannot be created.
pub(crate) async fn fresh_database() -> String {
    let admin = admin_url().await;
    let name = format!("carehub_test_{}", uuid::Uuid::new_v4().simple());
    let mut connection = PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL at {admin}: {e}"));
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut connection)
        .await
        .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
    let _ = connection.close().await;
    database_url(&admin, &name)
}

/// The URL of the maintenance database (`postgres`) of the server tests use, starting the
/// shared cluster if needed.
///
/// # Panics
///
/// As [`fresh_database`], when the cluster cannot be started.
pub(crate) async fn admin_url() -> String {
    if let Some(url) = std::env::var(EXTERNAL_SERVER_VAR)
        .ok()
        .filter(|url| !url.is_empty())
    {
        return url;
    }
    // The start blocks for seconds: keep it off the test's runtime threads.
    let cluster = tokio::task::spawn_blocking(cluster)
        .await
        .unwrap_or_else(|e| panic!("the PostgreSQL start task failed: {e}"));
    match cluster {
        Ok(cluster) => cluster.admin_url.clone(),
        Err(reason) => panic!("the test PostgreSQL cluster is not available: {reason}"),
    }
}

/// Runs `script`, SQL as `psql` reads it (a plain `pg_dump` with its `COPY … FROM stdin` data,
/// say), against the database at `url`, stopping at the first error. Blocks until psql is done.
///
/// # Errors
///
/// psql's output, when it cannot be run or a statement fails.
pub(crate) fn run_script(url: &str, script: &str) -> Result<(), String> {
    use std::io::Write as _;
    let psql = Binaries::find().psql;
    let mut child = Command::new(&psql)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", psql.display()))?;
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(script.as_bytes()));
    let output = child
        .wait_with_output()
        .map_err(|e| format!("{} did not finish: {e}", psql.display()))?;
    match written {
        Some(Ok(())) if output.status.success() => Ok(()),
        _ => Err(format!(
            "{} failed ({}): {}{}",
            psql.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}

/// `admin` with its database name replaced by `database`, query parameters kept.
fn database_url(admin: &str, database: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{base}/{database}{query}")
}

struct Cluster {
    admin_url: String,
}

/// The process's cluster, started by the first caller; a failed start is remembered so that
/// each later test fails at once with the same reason instead of trying again.
fn cluster() -> Result<&'static Cluster, String> {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    CLUSTER
        .get_or_init(Cluster::start)
        .as_ref()
        .map_err(Clone::clone)
}

impl Cluster {
    fn start() -> Result<Cluster, String> {
        let binaries = Binaries::find();
        let as_root = running_as_root();
        let root = std::env::temp_dir().join(format!(
            "carehub-pg-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
        let data = root.join("data");
        let log = root.join("postgres.log");

        // Armed before anything runs, so even a half-started cluster is cleaned up.
        spawn_watchdog(&binaries.pg_ctl, &root, &data, as_root)?;

        if as_root {
            // PostgreSQL refuses to run as root; the postgres OS user owns the cluster.
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&root))?;
        }
        run(binaries
            .command(&binaries.initdb, as_root, &root)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .arg("-D")
            .arg(&data))?;

        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
                root.display()
            );
            let started = run(binaries
                .command(&binaries.pg_ctl, as_root, &root)
                .arg("-D")
                .arg(&data)
                .args(["-o", &options, "-l"])
                .arg(&log)
                .args(["-w", "-t", &START_TIMEOUT_SECS.to_string(), "start"]));
            match started.and_then(|()| wait_for_tcp(port)) {
                Ok(()) => {
                    return Ok(Cluster {
                        admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                    });
                }
                Err(reason) => {
                    let _ = run(binaries
                        .command(&binaries.pg_ctl, as_root, &root)
                        .arg("-D")
                        .arg(&data)
                        .args(["stop", "-m", "immediate"]));
                    last_failure = reason;
                }
            }
        }
        Err(format!(
            "{last_failure}\n--- {} ---\n{}",
            log.display(),
            fs::read_to_string(&log).unwrap_or_default()
        ))
    }
}

/// Where `initdb`, `pg_ctl` and `psql` are: the highest version under /usr/lib/postgresql
/// (Debian keeps them off PATH), else whatever PATH has.
struct Binaries {
    initdb: PathBuf,
    pg_ctl: PathBuf,
    psql: PathBuf,
}

impl Binaries {
    fn find() -> Binaries {
        let newest = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version: u32 = entry.file_name().to_str()?.parse().ok()?;
                let bin = entry.path().join("bin");
                bin.join("initdb").is_file().then_some((version, bin))
            })
            .max_by_key(|(version, _)| *version);
        match newest {
            Some((_, bin)) => Binaries {
                initdb: bin.join("initdb"),
                pg_ctl: bin.join("pg_ctl"),
                psql: bin.join("psql"),
            },
            None => Binaries {
                initdb: PathBuf::from("initdb"),
                pg_ctl: PathBuf::from("pg_ctl"),
                psql: PathBuf::from("psql"),
            },
        }
    }

    /// `program` run as the postgres OS user when we are root, from a directory that user can
    /// read (it may not be allowed into the current one).
    fn command(&self, program: &Path, as_root: bool, dir: &Path) -> Command {
        let mut command = if as_root {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", "postgres", "--"]).arg(program);
            runuser
        } else {
            Command::new(program)
        };
        command.current_dir(dir).stdin(Stdio::null());
        command
    }
}

fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// Runs `command` to completion; its output becomes the error when it fails.
fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// `pg_ctl -w` already waits for the server; this checks the TCP listener the tests use.
fn wait_for_tcp(port: u16) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let give_up = Instant::now() + Duration::from_secs(START_TIMEOUT_SECS);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= give_up {
            return Err(format!("PostgreSQL does not accept connections on {addr}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a detached shell that waits for this test process to exit, then stops the cluster
/// and deletes its directory.
fn spawn_watchdog(pg_ctl: &Path, root: &Path, data: &Path, as_root: bool) -> Result<(), String> {
    const SCRIPT: &str = r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done
if [ "$5" = root ]; then
    runuser -u postgres -- "$4" -D "$3" stop -m immediate
else
    "$4" -D "$3" stop -m immediate
fi
rm -rf "$2""#;
    Command::new("sh")
        .args(["-c", SCRIPT, "carehub-pg-watchdog"])
        .arg(std::process::id().to_string())
        .arg(root)
        .arg(data)
        .arg(pg_ctl)
        .arg(if as_root { "root" } else { "user" })
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so a Ctrl-C aimed at the test run does not stop it first.
        .process_group(0)
        .spawn()
        .map(drop)
        .map_err(|e| format!("cannot start the PostgreSQL watchdog: {e}"))
}
