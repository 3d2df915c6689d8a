//! `carehub ops status`: the service table `nats micro ls` and `nats micro stats` print, for a
//! machine without the `nats` CLI. It sends the same requests (`$SRV.INFO`, `$SRV.STATS`, or
//! their per-name forms) and gathers every instance's answer.

use anyhow::Context as _;
use carehub_bus::Bus;
use carehub_runtime::{CommonConfig, Env};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Options of `carehub ops status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Only instances of this service (sends `$SRV.INFO.<name>` / `$SRV.STATS.<name>`).
    pub(crate) service: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Also list every endpoint, slowest average first.
    #[arg(long)]
    pub(crate) endpoints: bool,
    /// Seconds to wait for answers (gathering stops earlier once answers stop coming).
    #[arg(long, default_value = "2")]
    pub(crate) wait: f64,
}

/// One endpoint of one instance, as `$SRV.INFO` and `$SRV.STATS` describe it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct EndpointStatus {
    pub(crate) name: String,
    pub(crate) subject: String,
    pub(crate) queue_group: String,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) processing_time_ns: u64,
    pub(crate) average_processing_time_ns: u64,
    pub(crate) last_error: Option<String>,
}

/// One running service instance.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct InstanceStatus {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) version: String,
    pub(crate) description: String,
    pub(crate) started: Option<String>,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    /// Total processing time over total requests, across endpoints.
    pub(crate) average_processing_time_ns: u64,
    pub(crate) endpoints: Vec<EndpointStatus>,
}

// The micro protocol's answers (io.nats.micro.v1.info_response / stats_response), read leniently.
#[derive(Deserialize)]
struct InfoReply {
    name: String,
    id: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    endpoints: Vec<InfoEndpoint>,
}

#[derive(Deserialize)]
struct InfoEndpoint {
    name: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    queue_group: String,
}

#[derive(Deserialize)]
struct StatsReply {
    name: String,
    id: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    started: Option<String>,
    #[serde(default)]
    endpoints: Vec<StatsEndpoint>,
}

#[derive(Deserialize)]
struct StatsEndpoint {
    name: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    queue_group: String,
    #[serde(default)]
    num_requests: u64,
    #[serde(default)]
    num_errors: u64,
    #[serde(default)]
    processing_time: u64,
    #[serde(default)]
    average_processing_time: u64,
    #[serde(default)]
    last_error: Option<String>,
}

/// Runs `carehub ops status`.
///
/// # Errors
/// When NATS cannot be reached, or no service instance answers.
pub(crate) async fn status(env: &Env, args: &StatusArgs) -> anyhow::Result<()> {
    let common = CommonConfig::from_env(env)?;
    let bus = Bus::connect(&common.bus_config(env, "ops")?, Duration::from_secs(10))
        .await
        .with_context(|| format!("connecting to NATS at {}", common.nats_url))?;
    let wait = Duration::from_secs_f64(args.wait.clamp(0.1, 60.0));
    let instances = gather(bus.client(), args.service.as_deref(), wait).await?;
    bus.drain().await;
    if instances.is_empty() {
        anyhow::bail!(
            "no carehub service answered $SRV.INFO at {}{}",
            common.nats_url,
            args.service
                .as_deref()
                .map(|s| format!(" for '{s}'"))
                .unwrap_or_default()
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&instances)?);
    } else {
        print!("{}", render_table(&instances, args.endpoints));
    }
    Ok(())
}

/// Asks every instance (or those of `service`) for its info and stats and joins the answers by
/// instance id, sorted by name then id.
///
/// # Errors
/// When the requests cannot be sent.
pub(crate) async fn gather(
    nc: &async_nats::Client,
    service: Option<&str>,
    wait: Duration,
) -> anyhow::Result<Vec<InstanceStatus>> {
    let (infos, stats) = tokio::try_join!(
        collect::<InfoReply>(nc, "INFO", service, wait),
        collect::<StatsReply>(nc, "STATS", service, wait),
    )?;
    let mut by_id: BTreeMap<(String, String), InstanceStatus> = BTreeMap::new();
    for info in infos {
        by_id.insert(
            (info.name.clone(), info.id.clone()),
            InstanceStatus {
                name: info.name,
                id: info.id,
                version: info.version,
                description: info.description,
                started: None,
                requests: 0,
                errors: 0,
                average_processing_time_ns: 0,
                endpoints: info
                    .endpoints
                    .into_iter()
                    .map(|e| EndpointStatus {
                        name: e.name,
                        subject: e.subject,
                        queue_group: e.queue_group,
                        requests: 0,
                        errors: 0,
                        processing_time_ns: 0,
                        average_processing_time_ns: 0,
                        last_error: None,
                    })
                    .collect(),
            },
        );
    }
    for s in stats {
        let entry = by_id
            .entry((s.name.clone(), s.id.clone()))
            .or_insert_with(|| InstanceStatus {
                name: s.name.clone(),
                id: s.id.clone(),
                version: s.version.clone(),
                description: String::new(),
                started: None,
                requests: 0,
                errors: 0,
                average_processing_time_ns: 0,
                endpoints: Vec::new(),
            });
        entry.started = s.started;
        for e in s.endpoints {
            let status = EndpointStatus {
                name: e.name.clone(),
                subject: e.subject,
                queue_group: e.queue_group,
                requests: e.num_requests,
                errors: e.num_errors,
                processing_time_ns: e.processing_time,
                average_processing_time_ns: e.average_processing_time,
                last_error: e.last_error.filter(|s| !s.is_empty()),
            };
            match entry.endpoints.iter_mut().find(|x| x.name == e.name) {
                Some(x) => *x = status,
                None => entry.endpoints.push(status),
            }
        }
    }
    let mut out: Vec<InstanceStatus> = by_id.into_values().collect();
    for i in &mut out {
        i.requests = i.endpoints.iter().map(|e| e.requests).sum();
        i.errors = i.endpoints.iter().map(|e| e.errors).sum();
        let total: u64 = i.endpoints.iter().map(|e| e.processing_time_ns).sum();
        i.average_processing_time_ns = total.checked_div(i.requests).unwrap_or(0);
    }
    Ok(out)
}

/// Sends `$SRV.<verb>[.<service>]` once and gathers the answers: until `wait` has passed, or
/// a quarter of a second after the last answer.
async fn collect<T: serde::de::DeserializeOwned>(
    nc: &async_nats::Client,
    verb: &str,
    service: Option<&str>,
    wait: Duration,
) -> anyhow::Result<Vec<T>> {
    let subject = carehub_bus::micro::verb_subject(verb, service);
    let inbox = nc.new_inbox();
    let mut sub = nc.subscribe(inbox.clone()).await?;
    nc.publish_with_reply(subject.clone(), inbox, "".into())
        .await
        .with_context(|| format!("sending {subject}"))?;
    nc.flush().await?;
    let deadline = tokio::time::Instant::now() + wait;
    let quiet = Duration::from_millis(250);
    let mut out = Vec::new();
    loop {
        let until = if out.is_empty() {
            deadline
        } else {
            deadline.min(tokio::time::Instant::now() + quiet)
        };
        match tokio::time::timeout_at(until, sub.next()).await {
            Ok(Some(m)) => match serde_json::from_slice::<T>(&m.payload) {
                Ok(v) => out.push(v),
                Err(e) => tracing::warn!(error = %e, %subject, "unreadable answer skipped"),
            },
            _ => break,
        }
    }
    Ok(out)
}

fn ms(ns: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "display only")]
    let ms = ns as f64 / 1e6;
    format!("{ms:.2}ms")
}

/// The table: one row per instance, then (with `endpoints`) one row per endpoint.
pub(crate) fn render_table(instances: &[InstanceStatus], endpoints: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:<24} {:<8} {:>9} {:>9} {:>7} {:>10}  SLOWEST ENDPOINT (AVG)",
        "NAME", "ID", "VERSION", "ENDPOINTS", "REQUESTS", "ERRORS", "AVG"
    );
    for i in instances {
        let slowest = i
            .endpoints
            .iter()
            .filter(|e| e.requests > 0)
            .max_by_key(|e| e.average_processing_time_ns)
            .map(|e| format!("{} ({})", e.name, ms(e.average_processing_time_ns)))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<10} {:<24} {:<8} {:>9} {:>9} {:>7} {:>10}  {}",
            i.name,
            i.id,
            i.version,
            i.endpoints.len(),
            i.requests,
            i.errors,
            ms(i.average_processing_time_ns),
            slowest
        );
    }
    let services: std::collections::BTreeSet<&str> =
        instances.iter().map(|i| i.name.as_str()).collect();
    let _ = writeln!(
        out,
        "{} instances of {} services",
        instances.len(),
        services.len()
    );
    if endpoints {
        let mut rows: Vec<(&InstanceStatus, &EndpointStatus)> = instances
            .iter()
            .flat_map(|i| i.endpoints.iter().map(move |e| (i, e)))
            .collect();
        rows.sort_by(|a, b| {
            b.1.average_processing_time_ns
                .cmp(&a.1.average_processing_time_ns)
        });
        let _ = writeln!(
            out,
            "\n{:<10} {:<24} {:<24} {:>9} {:>7} {:>10}  SUBJECT",
            "NAME", "ID", "ENDPOINT", "REQUESTS", "ERRORS", "AVG"
        );
        for (i, e) in rows {
            let _ = writeln!(
                out,
                "{:<10} {:<24} {:<24} {:>9} {:>7} {:>10}  {}",
                i.name,
                i.id,
                e.name,
                e.requests,
                e.errors,
                ms(e.average_processing_time_ns),
                e.subject
            );
        }
    }
    out
}
