//! The [`Gateway`]: builds the shared state and background listeners, assembles the router with
//! its layers, and serves it with a bounded graceful shutdown.

use crate::config::GatewayConfig;
use crate::edge::{self, rate_limit::Limiter};
use crate::error::ApiError;
use crate::routes::{self, docs};
use crate::state::{AppState, Shared};
use crate::tokens::Tokens;
use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use carehub_bus::Bus;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::timeout::TimeoutLayer;

/// No request may take longer than this (a token check and one bus call, each bounded by
/// their own timeout, fit well inside).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Room a request needs on the bus besides its body: the headers (request id, principal,
/// client address) and the few fields a route adds to the body.
pub(crate) const BUS_OVERHEAD: usize = 16 * 1024;

/// A body the gateway accepts must fit into one NATS message, or it would answer 503 instead
/// of 413: refuses a `CAREHUB_BODY_LIMIT` larger than the server's `max_payload` less
/// [`BUS_OVERHEAD`].
///
/// # Errors
/// Naming both values, when the limit is too large.
pub(crate) fn check_body_limit(body_limit: usize, max_payload: usize) -> anyhow::Result<()> {
    let room = max_payload.saturating_sub(BUS_OVERHEAD);
    if body_limit > room {
        anyhow::bail!(
            "CAREHUB_BODY_LIMIT is {body_limit} bytes, but NATS carries at most {max_payload} bytes per message \
             (max_payload) and a request needs {BUS_OVERHEAD} of them besides its body: set CAREHUB_BODY_LIMIT \
             to at most {room}, or raise max_payload in the NATS server configuration"
        );
    }
    Ok(())
}

/// The HTTP gateway: owns the shared state and the background tasks that keep the token cache
/// honest (revocation events, connection changes) and the rate limiter small.
pub struct Gateway {
    state: AppState,
    stop: CancellationToken,
    tasks: TaskTracker,
    /// `None` without configured origins, so a bare OPTIONS is an ordinary 405.
    cors: Option<CorsLayer>,
}

impl Gateway {
    /// Builds state, subscribes to revocation events and connection events. Does not bind.
    ///
    /// # Errors
    /// When the revocation subscription fails, a CORS origin is not a valid header value, or
    /// the OpenAPI document cannot be rendered.
    pub async fn new(cfg: GatewayConfig, bus: Bus) -> anyhow::Result<Self> {
        check_body_limit(cfg.body_limit, bus.client().server_info().max_payload)?;
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let tokens = Tokens::new(bus.clone(), cfg.verify_cache_ttl);
        let revocations = tokens
            .subscribe_revocations(stop.clone())
            .await
            .context("subscribing to revocation events")?;
        tasks.spawn(revocations);
        tasks.spawn(tokens.watch_connection(stop.clone()));
        let limiter = Limiter::new(cfg.rate_limit_per_sec, cfg.rate_limit_burst);
        if let Some(l) = &limiter {
            tasks.spawn(l.clone().housekeeping(stop.clone()));
        }
        let cors = cors_layer(&cfg)?;
        let state = AppState::new(Shared {
            bus,
            cfg: Arc::new(cfg),
            tokens,
            limiter,
            docs: Arc::new(docs::Docs::build().context("rendering the OpenAPI document")?),
        });
        Ok(Self {
            state,
            stop,
            tasks,
            cors,
        })
    }

    /// The axum Router (for tests and for serving).
    pub(crate) fn router(&self) -> Router {
        build_router(self.state.clone(), self.cors.clone())
    }

    /// Token checks, for tests that look at the cache.
    #[cfg(test)]
    pub(crate) fn tokens(&self) -> &Tokens {
        &self.state.tokens
    }

    /// Serves on the listener until `shutdown` is cancelled, then stops accepting and drains
    /// in-flight requests (graceful shutdown), bounded by `grace`.
    ///
    /// # Errors
    /// When the server fails (accepting is not possible any more).
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> anyhow::Result<()> {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "gateway listening");
        }
        let app = self
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        // Small writes go out at once: without TCP_NODELAY, a `/ws` frame written right after
        // another waits for the client's delayed ACK (tens of milliseconds).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        let server =
            axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let mut running = tokio::spawn(async move { server.await });
        let outcome = tokio::select! {
            r = &mut running => Some(r),
            () = shutdown.cancelled() => match tokio::time::timeout(grace, &mut running).await {
                Ok(r) => Some(r),
                Err(_) => {
                    tracing::warn!("shutdown grace passed with requests in flight");
                    running.abort();
                    None
                }
            },
        };
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        match outcome {
            Some(r) => r.context("gateway task")?.context("serving HTTP"),
            None => Ok(()),
        }
    }
}

fn build_router(state: AppState, cors: Option<CorsLayer>) -> Router {
    let (api, _) = routes::api().split_for_parts();
    let web = state.cfg.web_dir.as_ref().map(|dir| Web {
        pages: ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html"))),
        assets: ServeDir::new(dir),
    });
    api.route("/api/openapi.json", get(docs::openapi_json))
        .route("/api/docs", get(docs::docs_page))
        .route("/ws", routes::ws::route(&state.cfg))
        .fallback(move |req: Request| fallback(web.clone(), req))
        .layer(DefaultBodyLimit::max(state.cfg.body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(tower::util::option_layer(cors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            edge::edge,
        ))
        .with_state(state)
}

/// The web client's files: client-side routes fall back to `index.html`; `/assets/` does not (a
/// missing script must be a 404, not a page).
#[derive(Clone)]
struct Web {
    pages: ServeDir<ServeFile>,
    assets: ServeDir,
}

/// Unknown `/api` paths are JSON 404s; other paths are static files when a web dir is set, with
/// `index.html` for client-side routes.
async fn fallback(web: Option<Web>, req: Request) -> Response {
    match web {
        Some(web) if !req.uri().path().starts_with("/api") => {
            // Vite names every file under /assets/ by its content hash: cache those for good,
            // and have browsers revalidate everything else (index.html above all).
            let hashed = req.uri().path().starts_with("/assets/");
            let served = if hashed {
                web.assets.oneshot(req).await
            } else {
                web.pages.oneshot(req).await
            };
            let mut res = match served {
                Ok(res) => res.into_response(),
                Err(never) => match never {},
            };
            let cache = if hashed && res.status().is_success() {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            };
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            res
        }
        _ => ApiError::not_found().into_response(),
    }
}

fn cors_layer(cfg: &GatewayConfig) -> anyhow::Result<Option<CorsLayer>> {
    if cfg.cors_origins.is_empty() {
        return Ok(None);
    }
    let origins = cfg
        .cors_origins
        .iter()
        .map(|o| HeaderValue::from_str(o).with_context(|| format!("CORS origin '{o}'")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let x_request_id = HeaderName::from_static("x-request-id");
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_credentials(true)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                x_request_id.clone(),
                header::IF_MATCH,
            ])
            .expose_headers([x_request_id, header::RETRY_AFTER]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_limit_must_leave_room_for_the_bus_envelope() {
        let mib = 1_048_576;
        assert!(check_body_limit(65_536, mib).is_ok());
        assert!(check_body_limit(mib - BUS_OVERHEAD, mib).is_ok());
        let e = check_body_limit(mib - BUS_OVERHEAD + 1, mib)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("CAREHUB_BODY_LIMIT is 1032193") && e.contains("1048576"),
            "{e}"
        );
        assert!(check_body_limit(1, 0).is_err());
    }
}
