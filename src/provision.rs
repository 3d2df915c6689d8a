//! Operator commands that work on a service's storage directly: creating accounts (there is no
//! built-in admin password, and no network endpoint that creates admins), signing keys,
//! migrations and the demo seed.

use anyhow::Context as _;
use carehub_nats::Role;
use carehub_runtime::{CommonConfig, Db, Env};
use rand::Rng as _;
use std::path::PathBuf;

/// Opens the auth service's database as configured.
///
/// # Errors
/// When the configuration is invalid or the database unreachable.
pub async fn auth_db(env: &Env) -> anyhow::Result<Db> {
    let common = CommonConfig::from_env(env)?;
    let url = common.database_url_for(env, "auth");
    Db::connect("auth", url.as_deref(), &common.data_dir).await
}

/// Opens the notify service's database as configured.
///
/// # Errors
/// When the configuration is invalid or the database unreachable.
pub async fn notify_db(env: &Env) -> anyhow::Result<Db> {
    let common = CommonConfig::from_env(env)?;
    let url = common.database_url_for(env, "notify");
    Db::connect("notify", url.as_deref(), &common.data_dir).await
}

/// The signing key file path as the auth service will read it.
///
/// # Errors
/// When the configuration is invalid.
pub(crate) fn key_file(env: &Env) -> anyhow::Result<PathBuf> {
    let common = CommonConfig::from_env(env)?;
    Ok(carehub_auth::AuthConfig::from_env(env, &common)?.key_file)
}

/// A random password of 20 characters from an unambiguous alphabet.
pub(crate) fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Runs every service's migrations.
///
/// # Errors
/// When a database is unreachable or a migration fails.
pub(crate) async fn migrate(env: &Env) -> anyhow::Result<()> {
    let db = auth_db(env).await?;
    db.migrate(&carehub_auth::MIGRATOR).await?;
    db.close().await;
    println!("auth: migrations applied");
    let common = CommonConfig::from_env(env)?;
    let url = common.database_url_for(env, "doctor");
    let doctor_db = Db::connect("doctor", url.as_deref(), &common.data_dir).await?;
    doctor_db.migrate(&carehub_doctor::MIGRATOR).await?;
    doctor_db.close().await;
    println!("doctor: migrations applied");
    let common = CommonConfig::from_env(env)?;
    let url = common.database_url_for(env, "patient");
    let db = Db::connect("patient", url.as_deref(), &common.data_dir).await?;
    db.migrate(&carehub_patient::MIGRATOR).await?;
    db.close().await;
    println!("patient: migrations applied");
    let db = notify_db(env).await?;
    db.migrate(&carehub_notify::MIGRATOR).await?;
    db.close().await;
    println!("notify: migrations applied");
    let url = common.database_url_for(env, "admin");
    let db = Db::connect("admin", url.as_deref(), &common.data_dir).await?;
    db.migrate(carehub_admin::migrator(&db)).await?;
    db.close().await;
    println!("admin: migrations applied");
    let url = common.database_url_for(env, carehub_hub::DATABASE);
    let db = Db::connect(carehub_hub::DATABASE, url.as_deref(), &common.data_dir).await?;
    db.migrate(&carehub_hub::MIGRATOR).await?;
    db.close().await;
    println!("comms: migrations applied");
    Ok(())
}

/// One seeded account, for printing.
#[derive(Debug)]
pub(crate) struct SeededUser {
    pub(crate) role: Role,
    pub(crate) email: String,
    pub(crate) name: String,
    pub(crate) password: String,
    /// A doctor's specialty, set up by `demo::furnish`.
    pub(crate) specialty: Option<&'static str>,
}

/// Seeds a demo clinic with random passwords. Refuses a database that already holds accounts,
/// so it can never touch real users.
///
/// # Errors
/// When the auth database already holds accounts or cannot be written.
pub(crate) async fn seed_demo(env: &Env) -> anyhow::Result<Vec<SeededUser>> {
    let db = auth_db(env).await?;
    anyhow::ensure!(
        !carehub_auth::service::has_users(&db).await?,
        "the auth database already holds accounts; the demo seed only runs on an empty one"
    );
    let people: [(Role, &str, &str); 8] = [
        (Role::Admin, "admin@demo.carehub.test", "Clinic Admin"),
        (
            Role::Doctor,
            "ines.moreau@demo.carehub.test",
            "Dr. Inès Moreau",
        ),
        (
            Role::Doctor,
            "kofi.mensah@demo.carehub.test",
            "Dr. Kofi Mensah",
        ),
        (
            Role::Doctor,
            "sara.lindqvist@demo.carehub.test",
            "Dr. Sara Lindqvist",
        ),
        (
            Role::Doctor,
            "tomas.novak@demo.carehub.test",
            "Dr. Tomáš Novák",
        ),
        (
            Role::Patient,
            "ada.patient@demo.carehub.test",
            "Ada Lovelace",
        ),
        (
            Role::Patient,
            "grace.patient@demo.carehub.test",
            "Grace Hopper",
        ),
        (
            Role::Patient,
            "alan.patient@demo.carehub.test",
            "Alan Turing",
        ),
    ];
    let mut out = Vec::new();
    for (role, email, name) in people {
        let password = random_password();
        carehub_auth::create_user(&db, email, &password, name, role)
            .await
            .with_context(|| format!("seeding {email}"))?;
        let specialty = match email {
            "ines.moreau@demo.carehub.test" | "kofi.mensah@demo.carehub.test" => Some("cardiology"),
            "sara.lindqvist@demo.carehub.test" | "tomas.novak@demo.carehub.test" => {
                Some("dermatology")
            }
            _ => None,
        };
        out.push(SeededUser {
            role,
            email: email.into(),
            name: name.into(),
            password,
            specialty,
        });
    }
    db.close().await;
    Ok(out)
}
