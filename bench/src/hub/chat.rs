//! Chat delivery latency at a paced rate: patients each send into their own appointment's room
//! from their socket, one doctor socket receives every message; each message carries its send
//! time, so the receiver measures send → `chat_message` received.

use super::ws::Socket;
use crate::booking::{histogram, micros};
use crate::cpu;
use futures::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// How long after the last send the receiver waits for stragglers.
const DRAIN: Duration = Duration::from_secs(3);

/// What one chat run measured.
#[derive(Debug)]
pub(super) struct ChatRun {
    /// Messages sent inside the measured window.
    pub(crate) sent: u64,
    /// Of those, how many reached the receiver.
    pub(crate) delivered: u64,
    /// Error frames the senders got (rate limits, refusals).
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) window: Duration,
    pub(crate) latency: Histogram<u64>,
    /// CPU time of each named process during the window.
    pub(crate) cpu: Vec<(String, Duration)>,
}

/// Sends `rate` messages per second in total, spread over `senders` (socket, room), for
/// `warmup` + `duration`; `receiver` gets every message. Only messages sent inside the measured
/// window count. `procs` are sampled for CPU time at the window's edges.
///
/// # Errors
/// When a socket fails or a process's CPU time cannot be read.
pub(super) async fn run(
    senders: Vec<(Socket, String)>,
    mut receiver: Socket,
    rate: u32,
    warmup: Duration,
    duration: Duration,
    procs: &[(String, u32)],
    tag: &str,
) -> anyhow::Result<ChatRun> {
    let n = u32::try_from(senders.len().max(1)).unwrap_or(u32::MAX);
    let period = Duration::from_secs_f64(f64::from(n) / f64::from(rate.max(1)));
    let epoch = Instant::now();
    let from = micros(warmup);
    let until = micros(warmup + duration);
    let end = epoch + warmup + duration;
    let sent = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let mut tasks = Vec::new();
    for (i, (socket, room)) in senders.into_iter().enumerate() {
        let (mut sink, mut stream) = socket.split();
        let (sent, errors, first_error) = (sent.clone(), errors.clone(), first_error.clone());
        let offset = period * u32::try_from(i).unwrap_or(0) / n;
        let tag = tag.to_owned();
        // The sender's own socket gets its acks and its messages back: drain them.
        let drain = tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                if let Message::Text(t) = m
                    && t.contains("\"type\":\"error\"")
                {
                    errors.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut f) = first_error.lock() {
                        f.get_or_insert_with(|| t.to_string());
                    }
                }
            }
        });
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at((epoch + offset).into(), period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut k = 0u64;
            loop {
                tick.tick().await;
                if Instant::now() >= end {
                    break;
                }
                let t = micros(epoch.elapsed());
                let frame = json!({"type": "chat_send", "room": room,
                    "client_id": format!("{tag}-{i}-{k}"), "body": t.to_string()});
                k += 1;
                if sink.send(Message::text(frame.to_string())).await.is_err() {
                    break;
                }
                if (from..until).contains(&t) {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            (sink, drain)
        }));
    }
    let recv = tokio::spawn(async move {
        let mut latency = histogram()?;
        let mut delivered = 0u64;
        let stop = end + DRAIN;
        loop {
            let m = match tokio::time::timeout_at(stop.into(), receiver.next()).await {
                Err(_) => break,
                Ok(None) => anyhow::bail!("the receiver's socket closed"),
                Ok(Some(m)) => m?,
            };
            let Message::Text(t) = m else { continue };
            let f: serde_json::Value = serde_json::from_str(&t)?;
            if f["type"] != "chat_message" {
                continue;
            }
            let now = micros(epoch.elapsed());
            let Some(at) = f["message"]["body"]
                .as_str()
                .and_then(|b| b.parse::<u64>().ok())
            else {
                continue;
            };
            if (from..until).contains(&at) {
                delivered += 1;
                latency.saturating_record(now.saturating_sub(at).max(1));
            }
        }
        Ok::<_, anyhow::Error>((latency, delivered, receiver))
    });
    tokio::time::sleep_until((epoch + warmup).into()).await;
    let before = sample(procs)?;
    tokio::time::sleep_until(end.into()).await;
    let after = sample(procs)?;
    let mut sinks = Vec::new();
    for t in tasks {
        sinks.push(t.await?);
    }
    let (latency, delivered, mut receiver) = recv.await??;
    for (mut sink, drain) in sinks {
        let _ = sink.close().await;
        drain.abort();
    }
    let _ = receiver.close(None).await;
    let first_error = first_error.lock().ok().and_then(|f| f.clone());
    Ok(ChatRun {
        sent: sent.load(Ordering::Relaxed),
        delivered,
        errors: errors.load(Ordering::Relaxed),
        first_error,
        window: duration,
        latency,
        cpu: procs
            .iter()
            .zip(before.iter().zip(&after))
            .map(|((name, _), (b, a))| {
                (
                    name.clone(),
                    Duration::from_millis(a.saturating_sub(*b) * 10),
                )
            })
            .collect(),
    })
}

fn sample(procs: &[(String, u32)]) -> anyhow::Result<Vec<u64>> {
    procs
        .iter()
        .map(|(_, pid)| cpu::ticks(&pid.to_string()))
        .collect()
}
