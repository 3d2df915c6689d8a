//! How a refresh token travels: in an HttpOnly cookie (the default, so page scripts never see
//! it) or, for non-browser clients that ask for it, in the JSON body.

use crate::error::ApiError;
use axum::Json;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use carehub_nats::auth::Session;
use serde::Deserialize;
use utoipa::ToSchema;

/// Name of the refresh-token cookie.
pub(crate) const COOKIE: &str = "carehub_refresh";
/// The cookie is only sent to the auth routes.
const COOKIE_PATH: &str = "/api/auth";

/// Where the client wants the refresh token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TokenTransport {
    /// An HttpOnly `carehub_refresh` cookie; the body's `refresh_token` is empty.
    #[default]
    Cookie,
    /// The body's `refresh_token`; no cookie is set.
    Body,
}

/// The refresh token from the `carehub_refresh` cookie, if any.
pub(crate) fn read_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE && !value.is_empty())
        .map(|(_, value)| value.trim_matches('"').to_owned())
}

fn cookie(value: &str, max_age: i64, secure: bool) -> Result<HeaderValue, ApiError> {
    let secure = if secure { "; Secure" } else { "" };
    let max_age = max_age.max(0);
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; HttpOnly{secure}; SameSite=Strict; Path={COOKIE_PATH}; Max-Age={max_age}"
    ))
    .map_err(|_| {
        tracing::error!("refresh token is not a valid cookie value");
        ApiError::new(carehub_nats::ErrorCode::Internal, "internal error")
    })
}

/// A `Set-Cookie` value that removes the refresh cookie.
pub(crate) fn clear_cookie(secure: bool) -> Result<HeaderValue, ApiError> {
    cookie("", 0, secure)
}

/// The response for a freshly issued session, with the refresh token where the client wants it.
///
/// # Errors
/// When the token cannot be put in a cookie (auth issued a malformed token).
pub(crate) fn respond(
    mut session: Session,
    transport: TokenTransport,
    secure: bool,
) -> Result<Response, ApiError> {
    match transport {
        TokenTransport::Body => Ok(Json(session).into_response()),
        TokenTransport::Cookie => {
            let set = cookie(&session.refresh_token, session.refresh_expires_in, secure)?;
            session.refresh_token = String::new();
            Ok(([(header::SET_COOKIE, set)], Json(session)).into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carehub_nats::auth::User;
    use carehub_nats::{Role, UserStatus};

    fn session() -> Session {
        Session {
            access_token: "a".into(),
            token_type: "Bearer".into(),
            expires_in: 900,
            refresh_token: "r.secret".into(),
            refresh_expires_in: 3600,
            user: User {
                id: "u".into(),
                email: "e@x.test".into(),
                display_name: "E".into(),
                role: Role::Patient,
                status: UserStatus::Active,
                created_at: "2026-01-01T00:00:00Z".into(),
                time_zone: "UTC".into(),
            },
        }
    }

    async fn body_json(res: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn cookie_transport_hides_the_token_from_the_body() {
        let res = respond(session(), TokenTransport::Cookie, true).unwrap();
        let set = res.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            set,
            "carehub_refresh=r.secret; HttpOnly; Secure; SameSite=Strict; Path=/api/auth; Max-Age=3600"
        );
        assert_eq!(body_json(res).await["refresh_token"], "");
    }

    #[tokio::test]
    async fn body_transport_sets_no_cookie() {
        let res = respond(session(), TokenTransport::Body, true).unwrap();
        assert!(res.headers().get(header::SET_COOKIE).is_none());
        assert_eq!(body_json(res).await["refresh_token"], "r.secret");
    }

    #[test]
    fn the_refresh_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; carehub_refresh=tok; b=2"),
        );
        assert_eq!(read_cookie(&h).as_deref(), Some("tok"));
        assert!(read_cookie(&HeaderMap::new()).is_none());
        let clear = clear_cookie(false).unwrap();
        assert!(clear.to_str().unwrap().contains("Max-Age=0"));
        assert!(!clear.to_str().unwrap().contains("Secure"));
    }
}
