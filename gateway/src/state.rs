//! The state every handler shares: one cheap `Clone` struct built at start.

use crate::config::GatewayConfig;
use crate::edge::rate_limit::Limiter;
use crate::tokens::Tokens;
use carehub_bus::Bus;
use std::sync::Arc;

/// Bus, configuration, token checks and rate limiter.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) bus: Bus,
    pub(crate) cfg: Arc<GatewayConfig>,
    pub(crate) tokens: Tokens,
    /// `None` when rate limiting is off.
    pub(crate) limiter: Option<Limiter>,
    /// The OpenAPI document and docs page, rendered once.
    pub(crate) docs: Arc<crate::routes::docs::Docs>,
}
