//! `carehub bench`: measures a carehub it starts itself (see docs/BENCHMARKS.md).

/// Options of `carehub bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {}

/// Runs the benchmarks.
///
/// # Errors
/// Always, until the harness lands.
pub async fn run(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("the benchmark harness is not built yet")
}
