//! The command line: what each `carehub` subcommand is and does. `src/main.rs` parses it and
//! calls [`run`].

use crate::system::{Component, System};
use anyhow::Context as _;
use carehub_runtime::{CommonConfig, Env};
use clap::{Parser, Subcommand};

// `carehub`'s arguments. Plain comments on the clap types: a doc comment would become help text.
#[derive(Parser)]
#[command(
    name = "carehub",
    version,
    about = "carehub: a clinic platform on a NATS bus"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Run the gateway and every service in this process (starting a local nats-server if
    /// none answers at CAREHUB_NATS_URL).
    Up {
        /// Seed a demo clinic (only into an empty database) and print how to sign in.
        #[arg(long)]
        demo: bool,
    },
    /// Run one component alone; run several of them for more capacity.
    Serve { component: Component },
    /// Apply every service's database migrations and exit.
    Migrate,
    /// Account administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Access-token signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Operations on a running carehub over NATS (see docs/OPERATIONS.md).
    Ops {
        #[command(subcommand)]
        command: OpsCommand,
    },
    /// Copy every service's SQLite file consistently into a new directory, while carehub runs.
    Backup {
        /// A directory that does not exist yet (or is empty).
        dest: std::path::PathBuf,
    },
    /// Print the gateway's OpenAPI document (the one served at /api/openapi.json) without
    /// starting anything; `npm run gen` in web/ generates the client's types from it.
    Openapi,
    /// Print the JSON Schema of the hub's websocket frames (ClientFrame and ServerFrame) without
    /// starting anything; `npm run gen` in web/ generates the client's frame types from it.
    FramesSchema,
}

// `carehub ops …`.
#[derive(Subcommand)]
pub enum OpsCommand {
    /// Every service instance with its endpoints, requests, errors and processing times (the
    /// table of `nats micro ls` and `nats micro stats`).
    Status(crate::ops::StatusArgs),
    /// Publish again, with their original ids, the events a service published since a moment
    /// (from its outbox_sent), after the streams lost acknowledged messages; prints how many
    /// the streams already held.
    Replay(crate::replay::ReplayArgs),
}

// `carehub admin …`.
#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create an account directly in the auth database (for example the first admin).
    CreateUser {
        #[arg(long, value_parser = parse_role)]
        role: carehub_nats::Role,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// The password; if omitted a random one is generated and printed once.
        #[arg(long, env = "CAREHUB_NEW_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
}

// `carehub keys …`.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create the key file (mode 0600) if it does not exist.
    Init,
    /// Put a new signing key first; previous keys keep verifying until their tokens expire.
    Rotate,
}

fn parse_role(s: &str) -> Result<carehub_nats::Role, String> {
    carehub_nats::Role::parse(s)
}

impl Command {
    /// Whether the command prints nothing but its result on stdout (no log lines mixed in).
    pub fn quiet(&self) -> bool {
        matches!(self, Self::Ops { .. })
    }
}

/// Runs `command`.
///
/// # Errors
/// Whatever stopped the command, with context.
pub async fn run(command: Command, env: Env, common: CommonConfig) -> anyhow::Result<()> {
    match command {
        Command::Up { demo } => {
            crate::system::raise_open_files_limit();
            up(env, &common, demo).await
        }
        Command::Serve { component } => {
            crate::system::raise_open_files_limit();
            serve(&env, &common, &[component]).await
        }
        Command::Migrate => crate::provision::migrate(&env).await,
        Command::Admin {
            command:
                AdminCommand::CreateUser {
                    role,
                    email,
                    name,
                    password,
                },
        } => {
            let generated = password.is_none();
            let password = password.unwrap_or_else(crate::provision::random_password);
            let db = crate::provision::auth_db(&env).await?;
            let user = carehub_auth::create_user(&db, &email, &password, &name, role).await?;
            db.close().await;
            println!(
                "created {} {} ({})",
                user.role.as_str(),
                user.email,
                user.id
            );
            if generated {
                println!("password (shown once): {password}");
            }
            Ok(())
        }
        Command::Keys { command } => {
            let path = crate::provision::key_file(&env)?;
            match command {
                KeysCommand::Init => {
                    let created = carehub_auth::keys::ensure_key_file(&path)?;
                    println!(
                        "{} {}",
                        if created { "created" } else { "kept existing" },
                        path.display()
                    );
                }
                KeysCommand::Rotate => {
                    let kid = carehub_auth::keys::rotate_key_file(&path)?;
                    println!(
                        "new signing key {kid} in {}; auth instances pick it up on their next unknown-key check or restart",
                        path.display()
                    );
                }
            }
            Ok(())
        }
        Command::Ops {
            command: OpsCommand::Status(args),
        } => crate::ops::status(&env, &args).await,
        Command::Ops {
            command: OpsCommand::Replay(args),
        } => crate::replay::run(&env, &args).await,
        Command::Openapi => print_openapi(),
        Command::FramesSchema => print_frames_schema(),
        Command::Backup { dest } => {
            let manifest = crate::backup::run(&env, &dest).await?;
            crate::backup::print(&manifest, &dest);
            Ok(())
        }
    }
}

/// Prints the OpenAPI document, indented so a committed copy diffs line by line.
pub fn print_openapi() -> anyhow::Result<()> {
    let doc = carehub_gateway::openapi::to_json().context("serialising the OpenAPI document")?;
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

/// Prints the JSON Schema of the hub's websocket frames, indented like the OpenAPI document.
pub fn print_frames_schema() -> anyhow::Result<()> {
    let schema = carehub_nats::hub::frames_schema();
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(())
}

async fn up(mut env: Env, common: &CommonConfig, demo: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(&common.data_dir).with_context(|| {
        format!(
            "CAREHUB_DATA_DIR: cannot create {}",
            common.data_dir.display()
        )
    })?;
    let nats = crate::natsd::ensure(&common.nats_url, &common.data_dir).await?;
    if let Some(credentials) = nats.as_ref().and_then(|child| child.credentials()) {
        // The server started here knows only its generated passwords: connect with them.
        for (k, v) in credentials.client_env() {
            env.set(k, v);
        }
    }
    let key_file = crate::provision::key_file(&env)?;
    if env.raw("CAREHUB_AUTH_KEY_FILE").is_none() && carehub_auth::keys::ensure_key_file(&key_file)?
    {
        tracing::info!(path = %key_file.display(), "created a signing key file");
    }
    env.set("CAREHUB_AUTH_KEY_FILE", key_file.display().to_string());
    let users = if demo {
        crate::provision::seed_demo(&env).await?
    } else {
        Vec::new()
    };
    let system = System::start(&env, &Component::ALL).await?;
    if demo {
        println!("\nDemo clinic seeded. Sign in with (passwords are random and shown only now):");
        for u in &users {
            println!(
                "  {:<8} {:<36} {}   ({})",
                u.role.as_str(),
                u.email,
                u.password,
                u.name
            );
        }
        println!();
        if let Some(addr) = system.gateway_addr {
            // Specialties, hours and groups go through the API, in the background.
            tokio::spawn(async move {
                match crate::demo::furnish(&format!("http://{addr}"), &users).await {
                    Ok(()) => {
                        tracing::info!("demo clinic furnished: two groups, doctors with hours");
                    }
                    Err(e) => tracing::warn!(error = %e, "could not furnish the demo clinic"),
                }
            });
        }
    }
    wait_for_signal(system, common).await
}

async fn serve(env: &Env, common: &CommonConfig, components: &[Component]) -> anyhow::Result<()> {
    let system = System::start(env, components).await?;
    wait_for_signal(system, common).await
}

async fn wait_for_signal(system: System, common: &CommonConfig) -> anyhow::Result<()> {
    if let Some(addr) = system.gateway_addr {
        // With JSON logs on stdout, every line there stays JSON.
        if common.log_json {
            tracing::info!(%addr, "carehub is up");
        } else {
            println!("carehub is up: http://{addr}/  (API docs: http://{addr}/api/docs)");
        }
    }
    let signal = carehub_runtime::shutdown::on_signal();
    signal.cancelled().await;
    system.stop().await;
    Ok(())
}
