//! The caller's context in NATS headers, and the request id that travels with a call or event.
//!
//! The header names are the contract's ([`carehub_nats::rpc::headers`]); this module reads and
//! writes them on async-nats' header maps and keeps the id current while a handler runs, so
//! what it records on the way (an outbox event) carries the id on.

use carehub_nats::CallContext;
use carehub_nats::rpc::{headers, is_sane_request_id};
use std::future::Future;
use tracing::Instrument as _;

/// [`CallContext`] to and from NATS headers.
pub trait ContextHeaders: Sized {
    /// Writes the context into NATS headers.
    fn to_headers(&self) -> async_nats::HeaderMap;
    /// Reads a context from NATS headers; a malformed principal header is treated as absent.
    fn from_headers(h: Option<&async_nats::HeaderMap>) -> Self;
}

impl ContextHeaders for CallContext {
    /// Writes the context into NATS headers.
    fn to_headers(&self) -> async_nats::HeaderMap {
        let mut h = async_nats::HeaderMap::new();
        h.insert(headers::REQUEST_ID, self.request_id.as_str());
        if let Some(json) = self
            .principal
            .as_ref()
            .and_then(|p| serde_json::to_string(p).ok())
        {
            h.insert(headers::PRINCIPAL, json.as_str());
        }
        if let Some(ip) = &self.client_ip {
            h.insert(headers::CLIENT_IP, ip.as_str());
        }
        h
    }

    /// Reads a context from NATS headers; a malformed principal header is treated as absent.
    fn from_headers(h: Option<&async_nats::HeaderMap>) -> Self {
        let Some(h) = h else { return Self::internal() };
        let get = |name: &str| h.get(name).map(|v| v.as_str().to_owned());
        Self {
            request_id: get(headers::REQUEST_ID)
                .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            principal: get(headers::PRINCIPAL).and_then(|s| serde_json::from_str(&s).ok()),
            client_ip: get(headers::CLIENT_IP),
        }
    }
}

tokio::task_local! {
    static CURRENT_REQUEST_ID: String;
}

/// Runs `fut` with `request_id` as the [`current_request_id`]. Request handlers and event
/// consumers run inside it, so what they record on the way (an outbox event) carries the id on.
pub(crate) async fn with_request_id<F: Future>(request_id: Option<String>, fut: F) -> F::Output {
    match request_id {
        Some(id) => CURRENT_REQUEST_ID.scope(id, fut).await,
        None => fut.await,
    }
}

/// The request id of the call or event this task is handling, if it has one.
pub fn current_request_id() -> Option<String> {
    CURRENT_REQUEST_ID.try_with(Clone::clone).ok()
}

/// The request id a message carries in its headers, when it is a sane one.
pub(crate) fn request_id_in(h: Option<&async_nats::HeaderMap>) -> Option<String> {
    h?.get(headers::REQUEST_ID)
        .map(|v| v.as_str().to_owned())
        .filter(|id| is_sane_request_id(id))
}

/// Handles an event that arrived on `subject` with `headers`: `fut` runs in an `event` span
/// carrying the request id that caused the event (logged as `request_id`, like a call's), with
/// that id current for anything it records.
pub async fn handling_event<F: Future>(
    subject: &str,
    headers: Option<&async_nats::HeaderMap>,
    fut: F,
) -> F::Output {
    let request_id = request_id_in(headers);
    let span = tracing::info_span!(
        "event",
        subject,
        request_id = request_id.as_deref().unwrap_or(""),
    );
    async move {
        tracing::debug!("handling event");
        with_request_id(request_id, fut).await
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use carehub_nats::{Principal, Role, UserStatus};

    #[tokio::test]
    async fn the_request_id_is_current_inside_a_handler_and_only_there() {
        assert_eq!(current_request_id(), None);
        let inside = with_request_id(Some("req-1".into()), async {
            // Still current after an await point, and in nested handling.
            tokio::task::yield_now().await;
            let nested =
                with_request_id(Some("req-2".into()), async { current_request_id() }).await;
            (current_request_id(), nested)
        })
        .await;
        assert_eq!(inside, (Some("req-1".into()), Some("req-2".into())));
        assert_eq!(
            with_request_id(None, async { current_request_id() }).await,
            None
        );
        assert_eq!(current_request_id(), None);
    }

    #[test]
    fn only_a_sane_request_id_is_taken_from_headers() {
        let mut h = async_nats::HeaderMap::new();
        assert_eq!(request_id_in(Some(&h)), None);
        assert_eq!(request_id_in(None), None);
        h.insert(headers::REQUEST_ID, "abc-123");
        assert_eq!(request_id_in(Some(&h)), Some("abc-123".into()));
        h.insert(headers::REQUEST_ID, "has space");
        assert_eq!(request_id_in(Some(&h)), None);
    }

    #[test]
    fn context_survives_a_trip_through_headers() {
        let ctx = CallContext {
            request_id: "r-1".into(),
            principal: Some(Principal {
                user_id: "u".into(),
                role: Role::Doctor,
                status: UserStatus::Pending,
                jti: "j".into(),
                session_id: "s".into(),
                expires_at: 10,
            }),
            client_ip: Some("127.0.0.2".into()),
        };
        assert_eq!(CallContext::from_headers(Some(&ctx.to_headers())), ctx);
    }

    #[test]
    fn a_garbled_principal_header_is_no_principal() {
        let mut h = async_nats::HeaderMap::new();
        h.insert(headers::PRINCIPAL, "{not json");
        assert!(CallContext::from_headers(Some(&h)).principal.is_none());
    }
}
