//! The middleware every request passes first and every response passes last.
//!
//! It fixes the request id and the client address, opens the request's tracing span, applies
//! the rate limit to `/api`, turns every error response (ours, axum's or a tower layer's) into
//! the one JSON error body, adds the security headers, and records the request's metrics.
//!
//! - [`request_id`] the `X-Request-Id` kept or made;
//! - [`client_addr`] the client address (trusted proxies only);
//! - [`rate_limit`] the per-address limit;
//! - [`http_metrics`] the request metrics.

pub(crate) mod client_addr;
pub(crate) mod http_metrics;
pub(crate) mod rate_limit;
pub(crate) mod request_id;

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;
use tracing::Instrument;

/// The request's client address as [`client_addr::client_addr`] determined it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientAddr(pub IpAddr);

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// The edge middleware (see the module docs).
pub(crate) async fn edge(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id::sanitize(
        req.headers()
            .get(&X_REQUEST_ID)
            .and_then(|v| v.to_str().ok()),
    );
    // Without connect info (a router served without it) every client shares one address.
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let client = client_addr::client_addr(peer, req.headers(), &state.cfg);
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched
        .as_ref()
        .map_or(http_metrics::UNMATCHED, MatchedPath::as_str);
    let method = req.method().clone();
    let api = req.uri().path().starts_with("/api");
    req.extensions_mut().insert(id.clone());
    req.extensions_mut().insert(ClientAddr(client));
    let span = tracing::info_span!(
        "http",
        request_id = %id.0,
        method = %method,
        route = %route,
        caller_id = tracing::field::Empty,
    );
    async move {
        let limited = match (&state.limiter, api) {
            (Some(limiter), true) => limiter.check(client).err(),
            _ => None,
        };
        let res = match limited {
            Some(e) => e.into_response(),
            None => next.run(req).await,
        };
        let mut res = finish_errors(res, &id.0);
        let status = res.status().as_u16();
        let h = res.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&id.0) {
            h.insert(X_REQUEST_ID, v);
        }
        security_headers(h, api, state.cfg.cookie_secure);
        let elapsed = started.elapsed();
        http_metrics::record(route, &method, status, elapsed);
        let elapsed_ms = elapsed.as_secs_f64() * 1e3;
        if status >= 500 {
            tracing::warn!(status, elapsed_ms, "request failed");
        } else {
            tracing::info!(status, elapsed_ms, "request");
        }
        res
    }
    .instrument(span)
    .await
}

/// Gives every error response the JSON error body with the request id, keeping its other headers
/// (`Allow`, `Retry-After`, CORS).
fn finish_errors(res: Response, request_id: &str) -> Response {
    let error = if let Some(e) = res.extensions().get::<ApiError>() {
        e.clone()
    } else if res.status().is_client_error() || res.status().is_server_error() {
        let is_json = res
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if is_json {
            return res;
        }
        ApiError::from_status(res.status())
    } else {
        return res;
    };
    let (old, _) = res.into_parts();
    let mut fresh = error.to_response(request_id);
    for name in old.headers.keys() {
        if name == header::CONTENT_TYPE
            || name == header::CONTENT_LENGTH
            || fresh.headers().contains_key(name)
        {
            continue;
        }
        for v in old.headers.get_all(name) {
            fresh.headers_mut().append(name.clone(), v.clone());
        }
    }
    fresh
}

fn security_headers(h: &mut axum::http::HeaderMap, api: bool, hsts: bool) {
    let set = |h: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(
        h,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if api {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    if hsts {
        set(
            h,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
}
