//! `carehub backup <dest-dir>`: a consistent copy of every service's SQLite file, taken while
//! the services keep writing.
//!
//! Each file is copied with `VACUUM INTO`, which reads one snapshot of the database (a read
//! transaction in WAL mode, so writers are not blocked) and writes a compact, self-contained
//! copy. Files are snapshotted one after another, so two services' copies may be a few
//! milliseconds apart; docs/OPERATIONS.md says how outboxes and streams reconcile after a
//! restore. PostgreSQL is backed up with `pg_dump` instead.

use anyhow::Context as _;
use carehub_runtime::{CommonConfig, Env};
use serde::Serialize;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

/// Every service that keeps a database, by the name its file and schema carry.
pub(crate) const SERVICES: [&str; 6] = [
    "auth",
    "doctor",
    "patient",
    "notify",
    "admin",
    carehub_hub::DATABASE,
];

/// The manifest file written beside the copies.
pub(crate) const MANIFEST: &str = "manifest.json";

/// One copied file, as the manifest lists it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Entry {
    pub(crate) service: String,
    /// The copy's file name inside the backup directory.
    pub(crate) file: String,
    /// Where the database was read from.
    pub(crate) source: String,
    pub(crate) size: u64,
    /// When the snapshot was taken (RFC 3339, UTC).
    pub(crate) taken_at: String,
    /// `PRAGMA integrity_check` of the copy.
    pub(crate) integrity: String,
}

/// What `manifest.json` holds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Manifest {
    pub(crate) carehub_version: String,
    pub(crate) started_at: String,
    pub(crate) finished_at: String,
    pub(crate) files: Vec<Entry>,
    /// Services with no database file yet (never started here).
    pub(crate) missing: Vec<String>,
}

/// Where `service`'s SQLite file lives, or an error naming pg_dump for PostgreSQL.
fn source_file(env: &Env, common: &CommonConfig, service: &str) -> anyhow::Result<PathBuf> {
    match common.database_url_for(env, service) {
        None => Ok(common.data_dir.join(format!("{service}.db"))),
        Some(u) if u.starts_with("sqlite:") => {
            let opts = SqliteConnectOptions::from_str(&u)
                .with_context(|| format!("invalid SQLite URL for the {service} service"))?;
            Ok(opts.get_filename().to_path_buf())
        }
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
            anyhow::bail!(
                "the {service} service uses PostgreSQL (CAREHUB_DATABASE_URL or CAREHUB_{}_DATABASE_URL): \
                 carehub backup copies SQLite files only; back PostgreSQL up with pg_dump \
                 (see docs/OPERATIONS.md, \"Backups\")",
                service.to_ascii_uppercase()
            )
        }
        Some(u) => anyhow::bail!(
            "CAREHUB_{}_DATABASE_URL: unsupported scheme in '{}'",
            service.to_ascii_uppercase(),
            u.split(':').next().unwrap_or_default()
        ),
    }
}

fn now() -> String {
    carehub_nats::time::rfc3339_millis(chrono::Utc::now().timestamp_millis())
}

/// Copies every service's SQLite file into `dest` (which must not exist, or be empty) and
/// writes the manifest. Returns the manifest.
///
/// # Errors
/// When a service is on PostgreSQL, `dest` holds files, or a copy fails or is not intact.
pub(crate) async fn run(env: &Env, dest: &Path) -> anyhow::Result<Manifest> {
    let common = CommonConfig::from_env(env)?;
    let sources = SERVICES
        .iter()
        .map(|s| Ok((*s, source_file(env, &common, s)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if dest.exists() {
        let mut entries = std::fs::read_dir(dest).with_context(|| {
            format!("{} exists and is not a readable directory", dest.display())
        })?;
        if entries.next().is_some() {
            anyhow::bail!(
                "{} is not empty: carehub backup never overwrites; choose a new directory",
                dest.display()
            );
        }
    }
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let started_at = now();
    let mut files = Vec::new();
    let mut missing = Vec::new();
    for (service, source) in sources {
        if !source.exists() {
            missing.push(service.to_owned());
            continue;
        }
        let file = format!("{service}.db");
        let target = dest.join(&file);
        let taken_at = now();
        copy_one(&source, &target)
            .await
            .with_context(|| format!("backing up the {service} service's {}", source.display()))?;
        let integrity = integrity_check(&target).await?;
        if integrity != "ok" {
            anyhow::bail!(
                "the copy of {} failed its integrity check: {integrity}",
                source.display()
            );
        }
        let size = std::fs::metadata(&target)?.len();
        files.push(Entry {
            service: service.to_owned(),
            file,
            source: source.display().to_string(),
            size,
            taken_at,
            integrity,
        });
    }
    if files.is_empty() {
        anyhow::bail!(
            "no service database found in {}; is CAREHUB_DATA_DIR right?",
            common.data_dir.display()
        );
    }
    let manifest = Manifest {
        carehub_version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at,
        finished_at: now(),
        files,
        missing,
    };
    std::fs::write(
        dest.join(MANIFEST),
        serde_json::to_string_pretty(&manifest)?,
    )
    .with_context(|| format!("writing {}", dest.join(MANIFEST).display()))?;
    Ok(manifest)
}

/// `VACUUM INTO` one file: a snapshot read without blocking the service's writers.
async fn copy_one(source: &Path, target: &Path) -> anyhow::Result<()> {
    let target = target
        .to_str()
        .context("the backup directory's path is not valid UTF-8")?;
    let mut conn = SqliteConnectOptions::new()
        .filename(source)
        .create_if_missing(false)
        .busy_timeout(std::time::Duration::from_secs(30))
        .connect()
        .await?;
    // VACUUM INTO takes no bound parameters; the path is quoted as an SQL string literal.
    let sql = format!("VACUUM INTO '{}'", target.replace('\'', "''"));
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// `PRAGMA integrity_check` of a SQLite file: `ok`, or what is wrong.
///
/// # Errors
/// When the file cannot be opened.
pub(crate) async fn integrity_check(file: &Path) -> anyhow::Result<String> {
    let mut conn = SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(false)
        .read_only(true)
        .connect()
        .await
        .with_context(|| format!("opening {}", file.display()))?;
    let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await?;
    conn.close().await?;
    Ok(rows.join("; "))
}

/// Prints what `carehub backup` did.
pub(crate) fn print(manifest: &Manifest, dest: &Path) {
    for f in &manifest.files {
        println!(
            "{:<8} {:>10} bytes  {}  integrity {}",
            f.service, f.size, f.taken_at, f.integrity
        );
    }
    for m in &manifest.missing {
        println!("{m:<8} (no database file; skipped)");
    }
    println!(
        "backup written to {} (manifest: {MANIFEST})",
        dest.display()
    );
}
