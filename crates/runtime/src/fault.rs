//! Fault injection for crash tests, compiled in only with the `fault-injection` feature (the
//! test suite enables it; release builds do not have it).
//!
//! `CAREHUB_FAULT` names the points (comma-separated) at which the process aborts, as a crash
//! or a SIGKILL would stop it: nothing after the point runs, no destructor, no flush. Points:
//! - `outbox_before_publish`: a transaction committed its event, the relay is about to publish;
//! - `outbox_after_publish`: JetStream acknowledged the event, the outbox row is not deleted yet.

/// Aborts the process if `point` is one of the configured fault points.
#[cfg(feature = "fault-injection")]
pub(crate) fn hit(point: &str) {
    static POINTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let points = POINTS.get_or_init(|| {
        std::env::var("CAREHUB_FAULT")
            .unwrap_or_default()
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect()
    });
    if points.iter().any(|p| p == point) {
        eprintln!("fault injection: aborting at {point}");
        std::process::abort();
    }
}

/// Without the `fault-injection` feature there are no fault points.
#[cfg(not(feature = "fault-injection"))]
#[inline]
pub(crate) fn hit(_point: &str) {}
