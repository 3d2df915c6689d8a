//! The load client: a separate process (`carehub-bench hub-client`, started by
//! `carehub-bench hub`) that opens many authenticated sockets from source addresses 127.0.0.2
//! and up, then counts which of them receive a chat message.
//!
//! It talks with the bench over its standard streams, one JSON object a line: the bench sends a
//! [`Plan`] (tokens go this way, never in the command line), the client answers [`Opened`]
//! (answers start with `hub-client: `, since its log shares standard output);
//! then each `await <sockets> <seconds>` line is answered with [`Reached`] once that many
//! sockets got a `chat_message` (or the seconds ran out). End of input ends the client.

use super::ws;
use crate::booking::{histogram, micros, ms};
use anyhow::Context as _;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio_tungstenite::tungstenite::Message;

/// Starts each answer line on the client's standard output, which it shares with its log.
const ANSWER: &str = "hub-client: ";

/// How long opening every socket may take before the bench gives up.
const OPEN_DEADLINE: Duration = Duration::from_secs(600);

/// What to open.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Plan {
    /// The hub node or gateway to connect to (`/ws`).
    pub(crate) addr: SocketAddr,
    /// Access tokens, used in turn (socket i signs in with token i mod len).
    pub(crate) tokens: Vec<String>,
    pub(crate) connections: usize,
    /// Sockets being opened at once.
    pub(crate) in_flight: usize,
    /// Sockets per source address (127.0.0.2, then .3, ...).
    pub(crate) per_source: usize,
}

/// The answer to a [`Plan`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Opened {
    /// Sockets that got `welcome`.
    pub(crate) opened: usize,
    pub(crate) failed: usize,
    pub(crate) first_error: Option<String>,
    pub(crate) secs: f64,
    /// Connect + upgrade + `auth` until `welcome`, per socket.
    pub(crate) setup_p50_ms: f64,
    pub(crate) setup_p99_ms: f64,
    /// Source addresses used.
    pub(crate) sources: usize,
    /// This process's open-files limit after raising it.
    pub(crate) open_files_limit: u64,
}

/// The answer to `await`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Reached {
    /// Sockets that received at least one `chat_message`.
    pub(crate) sockets: usize,
    /// Sockets the hub closed meanwhile.
    pub(crate) closed: usize,
    /// Unix microseconds of the last socket's first `chat_message`.
    pub(crate) last_arrival_unix_us: i64,
}

#[derive(Default)]
struct Counters {
    reached: AtomicUsize,
    closed: AtomicUsize,
    last_arrival: AtomicI64,
}

fn source(i: usize, per_source: usize) -> anyhow::Result<Ipv4Addr> {
    let n = u8::try_from(2 + i / per_source.max(1))
        .ok()
        .filter(|n| *n < 255)
        .context("more sockets than 253 source addresses hold; raise --per-source")?;
    Ok(Ipv4Addr::new(127, 0, 0, n))
}

/// Now, in Unix microseconds (the bench and the client share the machine's clock).
pub(crate) fn unix_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The client process's main: see the module documentation.
///
/// # Errors
/// When the plan cannot be read or standard output is gone.
pub(crate) async fn run() -> anyhow::Result<()> {
    let open_files_limit = carehub::system::raise_open_files_limit();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let plan: Plan = serde_json::from_str(&lines.next_line().await?.context("no plan on stdin")?)
        .context("reading the plan")?;
    anyhow::ensure!(!plan.tokens.is_empty(), "the plan has no tokens");
    source(plan.connections.saturating_sub(1), plan.per_source)?;
    let counters = Arc::new(Counters::default());
    let started = Instant::now();
    let mut setup = histogram()?;
    let (mut opened, mut failed, mut first_error) = (0, 0, None);
    let plan = &plan;
    let mut attempts = futures::stream::iter(0..plan.connections)
        .map(|i| async move {
            let t = Instant::now();
            let token = &plan.tokens[i % plan.tokens.len()];
            let ws = ws::signed_in(plan.addr, Some(source(i, plan.per_source)?), token).await?;
            Ok::<_, anyhow::Error>((ws, t.elapsed()))
        })
        .buffer_unordered(plan.in_flight.max(1));
    while let Some(r) = attempts.next().await {
        match r {
            Ok((socket, took)) => {
                opened += 1;
                setup.saturating_record(micros(took));
                tokio::spawn(watch(socket, Arc::clone(&counters)));
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    let answer = Opened {
        opened,
        failed,
        first_error,
        secs: started.elapsed().as_secs_f64(),
        setup_p50_ms: ms(&setup, 0.5),
        setup_p99_ms: ms(&setup, 0.99),
        sources: plan.connections.div_ceil(plan.per_source.max(1)),
        open_files_limit,
    };
    say(&answer).await?;
    while let Some(line) = lines.next_line().await? {
        let mut words = line.split_whitespace();
        if words.next() != Some("await") {
            continue;
        }
        let want: usize = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
        let secs: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(30);
        let deadline = Instant::now() + Duration::from_secs(secs);
        while counters.reached.load(Ordering::Acquire) < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        say(&Reached {
            sockets: counters.reached.load(Ordering::Acquire),
            closed: counters.closed.load(Ordering::Acquire),
            last_arrival_unix_us: counters.last_arrival.load(Ordering::Acquire),
        })
        .await?;
    }
    Ok(())
}

async fn say(answer: &impl Serialize) -> anyhow::Result<()> {
    let mut line = ANSWER.as_bytes().to_vec();
    line.extend(serde_json::to_vec(answer)?);
    line.push(b'\n');
    let mut out = tokio::io::stdout();
    out.write_all(&line).await?;
    out.flush().await?;
    Ok(())
}

/// Reads one socket until it closes (which answers the hub's pings), noting its first
/// `chat_message`.
async fn watch(mut socket: ws::Socket, counters: Arc<Counters>) {
    let mut seen = false;
    while let Some(m) = socket.next().await {
        match m {
            Ok(Message::Text(t)) if !seen => {
                let chat = serde_json::from_str::<serde_json::Value>(&t)
                    .is_ok_and(|f| f["type"] == "chat_message");
                if chat {
                    seen = true;
                    counters.last_arrival.fetch_max(unix_us(), Ordering::AcqRel);
                    counters.reached.fetch_add(1, Ordering::AcqRel);
                }
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    counters.closed.fetch_add(1, Ordering::AcqRel);
}

/// The bench's side of a load client process.
pub(crate) struct LoadClient {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl std::fmt::Debug for LoadClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadClient").finish_non_exhaustive()
    }
}

impl LoadClient {
    /// Starts `carehub-bench hub-client` (logging into `log`), hands it `plan` and waits until
    /// it opened every socket.
    ///
    /// # Errors
    /// When the process cannot start or answers nothing in time.
    pub(crate) async fn start(plan: &Plan, log: &Path) -> anyhow::Result<(Self, Opened)> {
        let exe = std::env::current_exe().context("locating the carehub-bench executable")?;
        let file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new(exe)
            .arg("hub-client")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .context("starting the load client")?;
        let mut stdin = child.stdin.take().context("the client's stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("the client's stdout")?).lines();
        let mut line = serde_json::to_vec(plan)?;
        line.push(b'\n');
        stdin.write_all(&line).await?;
        stdin.flush().await?;
        let mut client = Self {
            child,
            stdin: Some(stdin),
            stdout,
        };
        let opened = client.answer(OPEN_DEADLINE).await?;
        Ok((client, opened))
    }

    async fn answer<T: for<'de> Deserialize<'de>>(
        &mut self,
        within: Duration,
    ) -> anyhow::Result<T> {
        // Log lines the client printed before its answer are skipped.
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let line = tokio::time::timeout_at(deadline, self.stdout.next_line())
                .await
                .context("the load client answered nothing in time")??
                .context("the load client exited")?;
            if let Some(json) = line.strip_prefix(ANSWER) {
                return serde_json::from_str(json)
                    .with_context(|| format!("the load client said {line}"));
            }
        }
    }

    /// Waits until `sockets` sockets received a chat message, at most `secs` seconds.
    ///
    /// # Errors
    /// When the client is gone.
    pub(crate) async fn await_reached(
        &mut self,
        sockets: usize,
        secs: u64,
    ) -> anyhow::Result<Reached> {
        let stdin = self.stdin.as_mut().context("the load client was stopped")?;
        stdin
            .write_all(format!("await {sockets} {secs}\n").as_bytes())
            .await?;
        stdin.flush().await?;
        self.answer(Duration::from_secs(secs + 30)).await
    }

    /// Ends the client (closing its sockets) and waits for it to exit.
    pub(crate) async fn stop(mut self) {
        drop(self.stdin.take());
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_take_source_addresses_from_127_0_0_2_in_blocks() {
        assert_eq!(source(0, 1000).unwrap(), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(source(999, 1000).unwrap(), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(source(19_499, 1000).unwrap(), Ipv4Addr::new(127, 0, 0, 21));
        assert_eq!(source(252, 1).unwrap(), Ipv4Addr::new(127, 0, 0, 254));
        assert!(
            source(253, 1).is_err(),
            "127.0.0.255 is the broadcast address"
        );
    }
}
