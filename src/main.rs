//! `carehub`: parses the command line, sets up logging and the runtime, and runs the command
//! ([`carehub::cli`]).

use carehub::cli::{Cli, Command};
use carehub_runtime::{CommonConfig, Env};
use clap::Parser as _;

/// mimalloc instead of the system allocator: the services allocate many small, short-lived
/// buffers across threads (JSON, NATS messages, SQL rows), where glibc's arenas spend a visible
/// share of the CPU (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Printing the OpenAPI document or the frame schema needs no configuration at all.
    match cli.command {
        Command::Openapi => return carehub::cli::print_openapi(),
        Command::FramesSchema => return carehub::cli::print_frames_schema(),
        _ => {}
    }
    let env = Env::from_process();
    let common = CommonConfig::from_env(&env)?;
    // `ops` prints tables and JSON on stdout for scripts; log lines would mix in.
    if !cli.command.quiet() {
        carehub_runtime::telemetry::init(common.log_json);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(carehub::cli::run(cli.command, env, common))
}
