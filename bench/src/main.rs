//! `carehub-bench`: parses the command line and runs the benchmark it names.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "carehub-bench",
    version,
    about = "Measure a carehub that this command starts itself (see docs/BENCHMARKS.md)"
)]
struct Cli {
    #[command(flatten)]
    args: carehub_bench::BenchArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    carehub_runtime::telemetry::init(false);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(carehub_bench::run(cli.args))
}
