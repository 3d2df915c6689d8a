//! `carehub_http_requests_total` and `carehub_http_request_duration_seconds`, labelled with the
//! matched route template (never the raw path, so the label set stays bounded), the method and
//! the status class.
//!
//! Handles are registered once per (route, method, class) and kept, so a request records with
//! one read-locked map lookup and no allocation. With metrics off nothing is recorded.

use axum::http::Method;
use metrics::{Counter, Histogram};
use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock, RwLock};
use std::time::Duration;

const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "OTHER",
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const SLOTS: usize = METHODS.len() * CLASSES.len();

/// The route label of requests no route matched (unknown paths, static files).
pub(crate) const UNMATCHED: &str = "<unmatched>";

type Slots = [OnceLock<(Counter, Histogram)>; SLOTS];

static ROUTES: LazyLock<RwLock<HashMap<Box<str>, &'static Slots>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::PATCH => 3,
        Method::DELETE => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// The slots of `route`, created on first use. Route templates are a fixed set (plus
/// [`UNMATCHED`]), so the leaked slots are bounded.
fn slots(route: &str) -> &'static Slots {
    if let Some(s) = ROUTES
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(route)
    {
        return s;
    }
    let mut map = ROUTES
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    map.entry(route.into())
        .or_insert_with(|| Box::leak(Box::new(std::array::from_fn(|_| OnceLock::new()))))
}

/// Records one answered request.
pub(crate) fn record(route: &str, method: &Method, status: u16, elapsed: Duration) {
    if !carehub_runtime::metrics::enabled() {
        return;
    }
    let m = method_index(method);
    let c = usize::from(status / 100).clamp(1, 5) - 1;
    let (count, duration) = slots(route)[m * CLASSES.len() + c].get_or_init(|| {
        let labels = [
            ("component", "gateway".to_owned()),
            ("route", route.to_owned()),
            ("method", METHODS[m].to_owned()),
            ("status", CLASSES[c].to_owned()),
        ];
        (
            metrics::counter!("carehub_http_requests_total", &labels),
            metrics::histogram!("carehub_http_request_duration_seconds", &labels),
        )
    });
    count.increment(1);
    duration.record(elapsed.as_secs_f64());
}
