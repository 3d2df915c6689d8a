//! A private PostgreSQL cluster for the booking benchmark: `initdb` into a temporary directory
//! (as the `postgres` OS user when run as root, since PostgreSQL refuses root), `pg_ctl start`
//! on a free port listening on 127.0.0.1 only. Dropping it stops the server and deletes the
//! directory.
//!
//! Durability stays at PostgreSQL's defaults (fsync and synchronous commit on), so the figures
//! are those of a real deployment on this disk, unlike the test suite's cluster.

use crate::cluster::free_port;
use anyhow::Context as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A running private cluster.
pub(super) struct PrivatePostgres {
    root: PathBuf,
    pg_ctl: PathBuf,
    as_root: bool,
    /// `postgres://postgres@127.0.0.1:<port>/carehub`, an empty database.
    pub(crate) url: String,
}

impl std::fmt::Debug for PrivatePostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivatePostgres")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl PrivatePostgres {
    /// Creates and starts the cluster inside `parent`, then creates the `carehub` database.
    ///
    /// # Errors
    /// When the PostgreSQL binaries are missing (`apt-get install postgresql`), `initdb` or
    /// `pg_ctl` fail (the error carries the server log), or the database cannot be created.
    pub(super) async fn start(parent: &Path) -> anyhow::Result<Self> {
        let bin = binaries_dir();
        let root = parent.join("postgres");
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let as_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let mut pg = Self {
            root: root.clone(),
            pg_ctl: bin.join("pg_ctl"),
            as_root,
            url: String::new(),
        };
        if as_root {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&root))?;
        }
        let data = root.join("data");
        run(pg
            .command(&bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale"])
            .arg("-D")
            .arg(&data))?;
        let port = free_port()?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300",
            root.display()
        );
        let log = root.join("postgres.log");
        let started = run(pg
            .command(&pg.pg_ctl)
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(&log)
            .args(["-w", "-t", "60", "start"]));
        if let Err(e) = started {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(e.context(format!("PostgreSQL did not start; its log:\n{tail}")));
        }
        let admin = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        create_database(&admin, "carehub").await?;
        pg.url = format!("postgres://postgres@127.0.0.1:{port}/carehub");
        Ok(pg)
    }

    /// The postmaster's process id: the first line of `postmaster.pid` in the data directory.
    pub(crate) fn pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.root.join("data").join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// `program` as the postgres OS user when we are root, from a directory it may enter.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        cmd.current_dir(&self.root).stdin(Stdio::null());
        cmd
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.root.join("data");
        let _ = self
            .command(&self.pg_ctl)
            .arg("-D")
            .arg(&data)
            .args(["stop", "-m", "immediate"])
            .output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

async fn create_database(admin_url: &str, name: &'static str) -> anyhow::Result<()> {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("connecting to {admin_url}"))?;
    let sql = match name {
        "carehub" => "CREATE DATABASE carehub",
        other => anyhow::bail!("unexpected database name {other}"),
    };
    sqlx::raw_sql(sql)
        .execute(&mut conn)
        .await
        .context("creating the benchmark database")?;
    conn.close().await.ok();
    Ok(())
}

/// The newest `/usr/lib/postgresql/<version>/bin` (Debian keeps the tools off `PATH`), else
/// an empty path so that `PATH` is searched.
fn binaries_dir() -> PathBuf {
    std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by_key(|(v, _)| *v)
        .map(|(_, bin)| bin)
        .unwrap_or_default()
}

/// Runs `cmd` to completion; its output becomes the error when it fails.
fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("running {cmd:?} (is PostgreSQL installed?)"))?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
