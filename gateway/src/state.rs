//! The state every handler shares: one cheap `Clone` struct built at start.

use crate::config::GatewayConfig;
use crate::edge::rate_limit::Limiter;
use crate::tokens::Tokens;
use carehub_bus::Bus;
use std::sync::Arc;

/// What every handler shares, behind one reference count: axum hands each extractor and the
/// edge middleware a clone of the state, several per request.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Shared>);

impl AppState {
    pub(crate) fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Bus, configuration, token checks and rate limiter.
pub(crate) struct Shared {
    pub(crate) bus: Bus,
    pub(crate) cfg: Arc<GatewayConfig>,
    pub(crate) tokens: Tokens,
    /// `None` when rate limiting is off.
    pub(crate) limiter: Option<Limiter>,
    /// The OpenAPI document and docs page, rendered once.
    pub(crate) docs: Arc<crate::routes::docs::Docs>,
}

/// A service's JSON reply passed on as the HTTP body as it came, without decoding and
/// re-encoding every field. `T` is the reply's type, which the route's OpenAPI annotation names;
/// the service built the body from that same type.
pub(crate) struct Forwarded<T>(bytes::Bytes, std::marker::PhantomData<fn() -> T>);

impl<T> Forwarded<T> {
    /// The reply's JSON.
    pub(crate) fn json(&self) -> &[u8] {
        &self.0
    }
}

impl<T> axum::response::IntoResponse for Forwarded<T> {
    fn into_response(self) -> axum::response::Response {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            self.0,
        )
            .into_response()
    }
}

impl AppState {
    /// Asks the service and answers with its reply as it came (see [`Forwarded`]).
    ///
    /// # Errors
    /// As [`Bus::request`], converted to the HTTP error.
    pub(crate) async fn forward<R: carehub_nats::Rpc>(
        &self,
        ctx: &carehub_nats::CallContext,
        req: &R,
    ) -> Result<Forwarded<R::Reply>, crate::error::ApiError> {
        let body = self.bus.request_json(ctx, req).await?;
        Ok(Forwarded(body, std::marker::PhantomData))
    }
}
