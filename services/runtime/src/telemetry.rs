//! Logging setup. Spans carry request ids, routes and user ids; never names, emails, tokens or
//! clinical text.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber: `RUST_LOG` (default `info`), JSON lines when `json`.
/// Calling it twice is harmless (the second call does nothing).
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,async_nats=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
