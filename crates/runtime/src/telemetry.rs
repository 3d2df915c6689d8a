//! Logging setup. Spans carry request ids, routes and user ids; never names, emails, tokens or
//! clinical text.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Installs the global subscriber: `RUST_LOG` (default `info`), JSON lines when `json`.
/// Text lines are coloured only on a terminal (and without `NO_COLOR`): a log file or a
/// collector gets plain text, and no time goes into escape codes nobody sees.
/// Calling it twice is harmless (the second call does nothing).
///
/// A JSON line holds `timestamp`, `level`, `message`, the event's fields and the fields of every
/// span it happened in, all at the top level: a line logged while handling a request carries
/// that request's `request_id` (and `route` at the gateway, `service` and `endpoint` in a
/// service), so one request can be followed across components with a single filter.
///
/// Span fields share the top level with event fields, so an event inside a request span must
/// not reuse a span field's name (`request_id`, `method`, `route`, `caller_id`, `service`,
/// `endpoint`): the line would hold the key twice.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,async_nats=warn"));
    if json {
        let layer = json_subscriber::fmt::layer()
            .with_target(false)
            .flatten_event(true)
            .with_current_span(false)
            .flatten_span_list_on_top_level(true);
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(layer)
            .try_init();
    } else {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .with_ansi(colours())
            .try_init();
    }
}

/// Whether text logs on stdout get colours: on a terminal, unless `NO_COLOR` is set
/// (<https://no-color.org>).
fn colours() -> bool {
    use std::io::IsTerminal as _;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
