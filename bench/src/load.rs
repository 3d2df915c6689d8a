//! The load generator every scenario shares: a fixed number of workers, each sending one
//! request at a time (closed loop, or paced to a fixed rate), through a warm-up and then a
//! measured window. Only requests that start and finish inside the window count; the server
//! processes' CPU time is sampled at the window's edges.

use super::cpu::{CpuDelta, Procs};
use anyhow::Context as _;
use futures::future::BoxFuture;
use hdrhistogram::Histogram;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// One request of a scenario; the argument is the worker's index (to pick its own account).
/// `Err` counts as a failed request.
pub(crate) type Op = Arc<dyn Fn(usize) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// Wraps an async closure as an [`Op`].
pub(crate) fn op<F, Fut>(f: F) -> Op
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    Arc::new(move |worker| Box::pin(f(worker)))
}

/// How a scenario's load is shaped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    pub(crate) concurrency: usize,
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    /// Each worker starts one request per interval instead of back to back.
    pub(crate) pace: Option<Duration>,
}

/// What a run measured.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Latencies of successful requests, in microseconds.
    pub(crate) latency: Histogram<u64>,
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) elapsed: Duration,
    pub(crate) cpu: CpuDelta,
}

impl Outcome {
    pub(crate) fn per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// Latency at `quantile` (0..=1) in milliseconds.
    pub(crate) fn ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// `spent` divided over the successful requests, in microseconds.
    pub(crate) fn us_per_request(&self, spent: Duration) -> f64 {
        spent.as_secs_f64() * 1e6 / self.ok.max(1) as f64
    }
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const DONE: u8 = 2;

impl Load {
    pub(crate) fn closed(concurrency: usize, warmup: Duration, duration: Duration) -> Self {
        Self {
            concurrency: concurrency.max(1),
            warmup,
            duration,
            pace: None,
        }
    }

    /// `concurrency` workers sharing a total of `per_sec` requests per second.
    pub(crate) fn paced(self, concurrency: usize, per_sec: u32) -> Self {
        let concurrency = concurrency.max(1);
        let total = f64::from(per_sec.max(1));
        Self {
            concurrency,
            pace: Some(Duration::from_secs_f64(concurrency as f64 / total)),
            ..self
        }
    }

    /// Runs `op` with this load shape.
    ///
    /// # Errors
    /// When CPU times cannot be read, a worker panicked, or no request succeeded (the first
    /// error is reported).
    pub(crate) async fn run(&self, procs: &Procs, op: &Op) -> anyhow::Result<Outcome> {
        let phase = Arc::new(AtomicU8::new(WARMUP));
        let mut workers = JoinSet::new();
        for i in 0..self.concurrency {
            let start = self.pace.map(|p| {
                // Spread paced workers over one interval so they do not fire together.
                let offset = p.mul_f64(i as f64 / self.concurrency as f64);
                (tokio::time::Instant::now() + offset, p)
            });
            workers.spawn(worker(i, Arc::clone(op), Arc::clone(&phase), start));
        }
        tokio::time::sleep(self.warmup).await;
        let before = procs.sample()?;
        let started = Instant::now();
        phase.store(MEASURE, Ordering::Release);
        tokio::time::sleep(self.duration).await;
        phase.store(DONE, Ordering::Release);
        let elapsed = started.elapsed();
        let after = procs.sample()?;

        let mut total = Tally::new()?;
        while let Some(joined) = workers.join_next().await {
            total.merge(joined.context("a load worker panicked")??)?;
        }
        anyhow::ensure!(
            total.ok > 0,
            "no request succeeded ({} failed): {}",
            total.errors,
            total
                .first_error
                .as_deref()
                .unwrap_or("no request completed in the window")
        );
        Ok(Outcome {
            latency: total.latency,
            ok: total.ok,
            errors: total.errors,
            first_error: total.first_error,
            elapsed,
            cpu: after.since(&before, procs),
        })
    }
}

/// One worker's counts, merged after the run so workers never share a lock.
struct Tally {
    latency: Histogram<u64>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            // 1 µs .. 60 s at 3 significant digits.
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram bounds")?,
            ok: 0,
            errors: 0,
            first_error: None,
        })
    }

    fn merge(&mut self, other: Tally) -> anyhow::Result<()> {
        self.latency
            .add(&other.latency)
            .context("merging histograms")?;
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        Ok(())
    }
}

async fn worker(
    index: usize,
    op: Op,
    phase: Arc<AtomicU8>,
    pace: Option<(tokio::time::Instant, Duration)>,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::new()?;
    let mut ticker = pace.map(|(start, period)| {
        let mut t = tokio::time::interval_at(start, period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        let at_start = phase.load(Ordering::Acquire);
        if at_start == DONE {
            return Ok(tally);
        }
        let sent = Instant::now();
        let result = op(index).await;
        let took = sent.elapsed();
        if at_start != MEASURE || phase.load(Ordering::Acquire) != MEASURE {
            continue;
        }
        match result {
            Ok(()) => {
                tally.ok += 1;
                let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                tally.latency.saturating_record(micros.max(1));
            }
            Err(e) => {
                tally.errors += 1;
                tally.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
}
