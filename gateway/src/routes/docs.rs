//! The OpenAPI document and its HTML rendering, both built once at start.

use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};

/// The document and page, rendered once.
#[derive(Debug)]
pub(crate) struct Docs {
    pub(crate) json: String,
    pub(crate) html: String,
}

impl Docs {
    /// Renders both from [`crate::openapi::to_json`].
    ///
    /// # Errors
    /// When the document cannot be serialised (a bug).
    pub(crate) fn build() -> anyhow::Result<Self> {
        let value = crate::openapi::to_json()?;
        Ok(Self {
            html: crate::openapi::html::render(&value),
            json: serde_json::to_string(&value)?,
        })
    }
}

/// `GET /api/openapi.json`.
pub(crate) async fn openapi_json(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        s.docs.json.clone(),
    )
}

/// `GET /api/docs`.
pub(crate) async fn docs_page(State(s): State<AppState>) -> Html<String> {
    Html(s.docs.html.clone())
}
