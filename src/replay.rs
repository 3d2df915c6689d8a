//! `carehub ops replay`: publishes again, with their original ids, the events one service's
//! outbox relay published since a moment, read from that service's `outbox_sent`. After JetStream
//! lost acknowledged messages (a power loss of a majority, a restored backup of the stream store),
//! this is how derived records (notifications, mails, audit entries, account copies) catch up:
//! consumers apply what they lack, and the stream stores once what it still holds within its
//! duplicate window. docs/OPERATIONS.md has the runbook.

use anyhow::Context as _;
use carehub_bus::Bus;
use carehub_runtime::{CommonConfig, Db, Env};
use std::time::Duration;

/// The services that publish through an outbox, so the only ones `replay` can read.
pub(crate) const PUBLISHERS: [&str; 4] = ["auth", "doctor", "patient", "admin"];

/// Options of `carehub ops replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The service whose published events to send again: auth, doctor, patient or admin.
    #[arg(long, value_parser = parse_service)]
    pub service: String,
    /// Events created at or after this moment: an RFC 3339 time (2026-12-07T09:00:00Z) or a
    /// duration back from now (90m, 2h, 1d).
    #[arg(long, value_parser = parse_since)]
    pub since: chrono::DateTime<chrono::Utc>,
}

fn parse_service(s: &str) -> Result<String, String> {
    PUBLISHERS
        .iter()
        .find(|p| p.eq_ignore_ascii_case(s.trim()))
        .map(|p| (*p).to_owned())
        .ok_or_else(|| {
            format!(
                "'{s}' publishes no events; one of {} (notify and comms have no outbox)",
                PUBLISHERS.join(", ")
            )
        })
}

/// An RFC 3339 time, or a duration counted back from now.
pub(crate) fn parse_since(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(at.with_timezone(&chrono::Utc));
    }
    let back = carehub_runtime::parse_duration(s).map_err(|_| {
        format!("expected an RFC 3339 time (2026-12-07T09:00:00Z) or a duration such as 90m or 1d, got '{s}'")
    })?;
    let back = chrono::Duration::from_std(back).map_err(|e| e.to_string())?;
    Ok(chrono::Utc::now() - back)
}

/// Runs `carehub ops replay`: opens the service's database with its settings, connects as its
/// NATS user, republishes and prints what the streams said.
///
/// # Errors
/// When the database or NATS cannot be reached, the database is not migrated, or a publish is
/// not acknowledged.
pub(crate) async fn run(env: &Env, args: &ReplayArgs) -> anyhow::Result<()> {
    let common = CommonConfig::from_env(env)?;
    let service = args.service.as_str();
    let url = common.database_url_for(env, service);
    let db = Db::connect(service, url.as_deref(), &common.data_dir)
        .await
        .with_context(|| format!("opening the {service} database"))?;
    let bus = Bus::connect(&common.bus_config(env, service)?, Duration::from_secs(10))
        .await
        .with_context(|| format!("connecting to NATS at {} as {service}", common.nats_url))?;
    let js = async_nats::jetstream::new(bus.client().clone());
    let report = carehub_runtime::outbox::replay(&db, &js, args.since.timestamp_millis()).await;
    bus.drain().await;
    db.close().await;
    let report = report?;
    println!(
        "{service}: republished {} events created since {}; the streams reported {} as duplicates (already stored) and stored {}",
        report.republished,
        args.since
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        report.duplicates,
        report.republished - report.duplicates,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_or_a_duration_back() {
        let at = parse_since("2026-12-07T09:00:00Z").unwrap();
        assert_eq!(at.timestamp(), 1_796_634_000);
        let hour_ago = parse_since("1h").unwrap();
        let delta = chrono::Utc::now() - hour_ago;
        assert!((3599..=3601).contains(&delta.num_seconds()), "{delta}");
        let err = parse_since("yesterday-ish").unwrap_err();
        assert!(err.contains("RFC 3339"), "{err}");
    }

    #[test]
    fn only_services_with_an_outbox_replay() {
        assert_eq!(parse_service("Doctor").unwrap(), "doctor");
        let err = parse_service("notify").unwrap_err();
        assert!(err.contains("auth, doctor, patient, admin"), "{err}");
    }
}
