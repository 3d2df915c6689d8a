//! `carehub-bench hub --bursts`: bursts of valid chat, typing, malformed and oversized frames
//! from a client that reads every frame, directly to a hub node and through the gateway, each
//! size and kind repeated (`--repeat`, 20 by default) on a fresh socket, with the protocol's
//! default frame limits; and how long a presence change takes to be pushed across nodes.

use super::ws;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// The hub's default error interval, in milliseconds (the bound on error frames per code).
const INTERVAL_MS: u128 = 250;
pub(super) const SIZES: [usize; 4] = [100, 300, 600, 2_000];
pub(super) const KINDS: [&str; 4] = ["chat", "typing", "malformed", "oversized"];

fn frame(kind: &str, room: &str, tag: &str, i: usize) -> String {
    let id = format!("{tag}-{i}");
    match kind {
        "chat" => json!({"type": "chat_send", "room": room, "client_id": id, "body": "burst"}),
        "typing" => json!({"type": "typing", "room": room, "active": i.is_multiple_of(2)}),
        "malformed" => return format!("{{not json {i}"),
        _ => {
            let body = "z".repeat((17 + i % 44) * 1024 - 100);
            json!({"type": "chat_send", "room": room, "client_id": id, "body": body})
        }
    }
    .to_string()
}

/// One burst's outcome.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(crate) closed: bool,
    /// Frames not accounted for (sent − acks − typing relayed − error counts).
    pub(crate) unaccounted: i64,
    /// Error frames of one code over `duration ÷ interval + 1`.
    pub(crate) over_bound: bool,
    pub(crate) ms: f64,
}

/// Sends one burst on a fresh socket and reads until every frame is accounted for.
///
/// # Errors
/// When a socket cannot be opened or signed in.
pub(super) async fn burst(
    addr: SocketAddr,
    token: &str,
    room: &str,
    doctor: &mut ws::Socket,
    kind: &str,
    n: usize,
    tag: &str,
) -> anyhow::Result<Outcome> {
    let socket = ws::signed_in(addr, None, token).await?;
    let (mut tx, mut rx) = socket.split();
    let frames: Vec<String> = (0..n).map(|i| frame(kind, room, tag, i)).collect();
    let start = Instant::now();
    let sender = tokio::spawn(async move {
        for f in frames {
            if tx.send(Message::text(f)).await.is_err() {
                break;
            }
        }
    });
    let (mut done, mut frames_by_code) = (0i64, HashMap::<String, usize>::new());
    let mut last_error = start;
    let mut out = Outcome::default();
    let give_up = start + Duration::from_secs(60);
    while done < n as i64 {
        tokio::select! {
            m = rx.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let f: Value = serde_json::from_str(&t).unwrap_or_default();
                    match f["type"].as_str() {
                        Some("chat_ack") => done += 1,
                        Some("error") => {
                            done += f["count"].as_i64().unwrap_or(1);
                            *frames_by_code.entry(f["code"].to_string()).or_default() += 1;
                            last_error = Instant::now();
                        }
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => { out.closed = true; break; }
                Some(Ok(_)) => {}
            },
            f = ws::next(doctor) => {
                if f.is_ok_and(|f| f["type"] == "typing") { done += 1 }
            }
            () = tokio::time::sleep_until(give_up) => break,
        }
    }
    sender.abort();
    out.ms = start.elapsed().as_secs_f64() * 1000.0;
    out.unaccounted = n as i64 - done;
    let bound = last_error.duration_since(start).as_millis() / INTERVAL_MS + 1;
    out.over_bound = frames_by_code.values().any(|k| *k as u128 > bound);
    Ok(out)
}

/// How long a presence change of the doctor takes to reach the patient as a push, in ms:
/// online (a socket opened on `doctor_node`), then offline (closed), `rounds` times.
///
/// # Errors
/// When a socket cannot be opened or a push does not come.
pub(super) async fn presence_propagation(
    patient_node: SocketAddr,
    doctor_node: SocketAddr,
    patient: &str,
    doctor: &str,
    room: &str,
    rounds: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut p = ws::signed_in(patient_node, None, patient).await?;
    ws::send(
        &mut p,
        &json!({"type": "presence_get", "appointment_id": room}),
    )
    .await?;
    ws::expect(&mut p, "presence").await?;
    let mut out = Vec::new();
    for _ in 0..rounds {
        for online in [true, false] {
            // Pushes about one user come at most once a second: wait that out first.
            tokio::time::sleep(Duration::from_millis(1_100)).await;
            let t0 = Instant::now();
            let d = if online {
                Some(ws::signed_in(doctor_node, None, doctor).await?)
            } else {
                None
            };
            loop {
                let f = ws::expect(&mut p, "presence").await?;
                if f["online"] == online {
                    break;
                }
            }
            out.push(t0.elapsed().as_secs_f64() * 1000.0);
            if let Some(mut d) = d {
                let _ = d.close(None).await;
            }
        }
    }
    Ok(out)
}

/// The table of burst outcomes by path, kind and size.
pub(super) fn render(rows: &[(String, String, usize, Vec<Outcome>)], presence: &[f64]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nBursts (default limits: 20 frames/s, burst 40; error interval 250 ms)\n\
         {:<8} {:<10} {:>6} {:>5} {:>7} {:>12} {:>10} {:>10}",
        "path", "kind", "frames", "runs", "closed", "unaccounted", "over bound", "median ms"
    );
    for (path, kind, n, runs) in rows {
        let ms: Vec<f64> = runs.iter().map(|o| o.ms).collect();
        let _ = writeln!(
            s,
            "{path:<8} {kind:<10} {n:>6} {:>5} {:>7} {:>12} {:>10} {:>10.0}",
            runs.len(),
            runs.iter().filter(|o| o.closed).count(),
            runs.iter().map(|o| o.unaccounted.abs()).sum::<i64>(),
            runs.iter().filter(|o| o.over_bound).count(),
            super::median(&ms),
        );
    }
    let _ = writeln!(
        s,
        "\nPresence propagation across nodes ({} changes): p50 {:.1} ms, p99 {:.1} ms (target p99 ≤ 1000 ms)",
        presence.len(),
        percentile(presence, 0.5),
        percentile(presence, 0.99)
    );
    s
}

/// The `q` quantile of `v` (nearest rank); NaN when empty.
pub(super) fn percentile(v: &[f64], q: f64) -> f64 {
    let mut p = v.to_vec();
    p.sort_by(f64::total_cmp);
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a short list"
    )]
    let i = ((p.len() as f64 - 1.0) * q).round() as usize;
    p.get(i).copied().unwrap_or(f64::NAN)
}

/// Runs the bursts on both paths and the presence propagation; prints the table.
///
/// # Errors
/// When the system cannot be started or driven.
pub(super) async fn run(args: &super::HubArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let sys = super::start(args, &http).await?;
    let (patient, room) = (&sys.chatters[0].token, &sys.chat_rooms[0]);
    let mut doctor = ws::signed_in(sys.hub_b, None, &sys.doctor.token).await?;
    let mut rows = Vec::new();
    for (path, addr) in [("hub", sys.hub_a), ("gateway", sys.gateway)] {
        for kind in KINDS {
            for n in SIZES {
                super::step(&format!(
                    "{path}: {} bursts of {n} {kind} frames",
                    args.repeat
                ));
                let mut runs = Vec::new();
                for r in 0..args.repeat {
                    let tag = format!("{path}-{kind}-{n}-{r}");
                    runs.push(burst(addr, patient, room, &mut doctor, kind, n, &tag).await?);
                }
                rows.push((path.to_owned(), kind.to_owned(), n, runs));
            }
        }
    }
    drop(doctor);
    super::step("presence propagation");
    let rounds = args.repeat.clamp(1, 20);
    let presence = presence_propagation(
        sys.hub_a,
        sys.hub_b,
        &sys.crowd[0].token,
        &sys.doctor.token,
        &sys.crowd_rooms[0],
        rounds,
    )
    .await?;
    print!("{}", render(&rows, &presence));
    Ok(())
}
