//! Extractors that turn every malformed request into an [`ApiError`], and the caller's identity.
//!
//! [`ApiJson`], [`OptionalJson`], [`ApiPath`] and [`ApiQuery`] wrap axum's own extractors so bad
//! JSON, a wrong content type, an oversized body or a bad path or query all answer with the one
//! error body. [`Ctx`], [`AuthCtx`] and [`AdminCtx`] build the [`CallContext`] for bus calls.

use crate::edge::{ClientAddr, request_id::RequestId};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts};
use bytes::Bytes;
use carehub_nats::{CallContext, ErrorCode, Role, UserStatus};
use serde::de::DeserializeOwned;

/// A JSON body; rejections become [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (is_json, bytes) = json_bytes(req, state).await?;
        if !is_json {
            return Err(ApiError::from_status(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ));
        }
        object_only(&bytes)?;
        decode::<T>(&bytes).map(Self)
    }
}

/// Decodes a body, reading a number with a zero fraction (`3.0`, `1e3`) where an integer is
/// expected: JSON Schema's `integer` (what the document states) is any number with a zero
/// fractional part, while serde only reads integer tokens into integer fields.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let rejection = match axum::Json::<T>::from_bytes(bytes) {
        Ok(axum::Json(v)) => return Ok(v),
        Err(rejection) => rejection,
    };
    if matches!(rejection, JsonRejection::JsonDataError(_))
        && let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes)
        && integral_floats_to_integers(&mut value)
        && let Ok(v) = serde_json::from_value(value)
    {
        return Ok(v);
    }
    Err(json_rejection(&rejection))
}

/// [`integral_floats_to_integers`] on each value (all of them, not stopping at the first change).
fn rewrite_all<'a>(values: impl Iterator<Item = &'a mut serde_json::Value>) -> bool {
    let mut changed = false;
    for v in values {
        changed |= integral_floats_to_integers(v);
    }
    changed
}

/// Rewrites every number with a zero fraction that fits an `i64` or `u64` as that integer;
/// whether anything changed.
fn integral_floats_to_integers(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    // 2^63 and 2^64, exactly representable as f64.
    const I64_END: f64 = 9_223_372_036_854_775_808.0;
    const U64_END: f64 = 18_446_744_073_709_551_616.0;
    match value {
        Value::Number(n) => {
            let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) else {
                return false;
            };
            // The range and the zero fraction are checked first, so each cast is exact.
            let integer = if (-I64_END..I64_END).contains(&f) {
                serde_json::Number::from(f as i64)
            } else if (0.0..U64_END).contains(&f) {
                serde_json::Number::from(f as u64)
            } else {
                return false;
            };
            *n = integer;
            true
        }
        Value::Array(items) => rewrite_all(items.iter_mut()),
        Value::Object(fields) => rewrite_all(fields.values_mut()),
        Value::Null | Value::Bool(_) | Value::String(_) => false,
    }
}

/// The body's bytes and whether the request says they are JSON.
async fn json_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<(bool, Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_json_content_type);
    let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
        .await
        .map_err(|r| ApiError::from_status(r.status()))?;
    Ok((is_json, bytes))
}

/// Every request body of the API is a JSON object. serde would also read a struct from an
/// array of its fields (`[null, null]`), which the documented schema does not allow.
fn object_only(bytes: &[u8]) -> Result<(), ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | None => Ok(()),
        Some(_) => Err(ApiError::bad_request(
            "the request body must be a JSON object",
        )),
    }
}

fn json_rejection(r: &JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonDataError(e) => {
            ApiError::new(ErrorCode::ValidationFailed, e.body_text())
        }
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(e.body_text()),
        JsonRejection::MissingJsonContentType(_) => ApiError::from_status(r.status()),
        other => ApiError::from_status(other.status()),
    }
}

/// A JSON body that may be absent: an empty body or `null` is `None`, anything else must be
/// valid JSON of the type.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (is_json, bytes) = json_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        if !is_json {
            return Err(ApiError::from_status(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ));
        }
        if bytes.trim_ascii() != b"null" {
            object_only(&bytes)?;
        }
        decode::<Option<T>>(&bytes).map(Self)
    }
}

fn is_json_content_type(ct: &str) -> bool {
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Path parameters; rejections become 400 `bad_request`.
#[derive(Debug, Clone)]
pub(crate) struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|r: PathRejection| ApiError::bad_request(r.body_text()))
    }
}

/// Query parameters; rejections become 400 `bad_request`.
#[derive(Debug, Clone)]
pub(crate) struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|r: QueryRejection| ApiError::bad_request(r.body_text()))
    }
}

/// The context of an anonymous call: request id and client address.
#[derive(Debug, Clone)]
pub(crate) struct Ctx(pub CallContext);

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let request_id = parts.extensions.get::<RequestId>().map_or_else(
            || crate::edge::request_id::sanitize(None).0,
            |r| r.0.clone(),
        );
        let client_ip = parts
            .extensions
            .get::<ClientAddr>()
            .map(|a| a.0.to_string());
        Ok(Self(CallContext {
            request_id,
            principal: None,
            client_ip,
        }))
    }
}

/// The context of a call by a verified user (`Authorization: Bearer <token>`).
#[derive(Debug, Clone)]
pub(crate) struct AuthCtx(pub CallContext);

impl FromRequestParts<AppState> for AuthCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Ctx(mut ctx) = Ctx::from_request_parts(parts, state).await?;
        let token = bearer(parts)?;
        let principal = state.tokens.verify(&ctx, token).await?;
        tracing::Span::current().record("caller_id", principal.user_id.as_str());
        ctx.principal = Some(principal);
        Ok(Self(ctx))
    }
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("malformed authorization header"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("malformed authorization header"))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(ApiError::unauthorized("malformed authorization header"));
    }
    Ok(token)
}

/// The context of a call by an active admin; anyone else gets 403 `forbidden`.
#[derive(Debug, Clone)]
pub(crate) struct AdminCtx(pub CallContext);

impl FromRequestParts<AppState> for AdminCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let AuthCtx(ctx) = AuthCtx::from_request_parts(parts, state).await?;
        match &ctx.principal {
            Some(p) if p.role == Role::Admin && p.status == UserStatus::Active => Ok(Self(ctx)),
            _ => Err(ApiError::forbidden("administrators only")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(auth: Option<&str>) -> Parts {
        let mut b = axum::http::Request::builder();
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn integers_may_be_written_with_a_zero_fraction_as_json_schema_allows() {
        #[derive(Debug, serde::Deserialize)]
        struct Body {
            version: i64,
            minutes: u32,
            items: Vec<u64>,
        }
        let b: Body = decode(br#"{"version": -3.0, "minutes": 3e1, "items": [1, 1e19]}"#).unwrap();
        assert_eq!(
            (b.version, b.minutes, b.items),
            (-3, 30, vec![1, 10_u64.pow(19)])
        );
        let b: Body = decode(br#"{"version": 7.0, "minutes": 30, "items": [2.0]}"#).unwrap();
        assert_eq!((b.version, b.minutes, b.items), (7, 30, vec![2]));
        for bad in [
            r#"{"version": 7.5, "minutes": 30, "items": []}"#,
            r#"{"version": 1e19, "minutes": 30, "items": []}"#,
            r#"{"version": 1, "minutes": 5e9, "items": []}"#,
            r#"{"version": "1", "minutes": 30, "items": []}"#,
        ] {
            let e = decode::<Body>(bad.as_bytes()).unwrap_err();
            assert_eq!(e.code, ErrorCode::ValidationFailed, "{bad}");
        }
    }

    #[test]
    fn bearer_tokens_are_read_and_anything_else_is_unauthorized() {
        assert_eq!(bearer(&parts(Some("Bearer abc.def"))).unwrap(), "abc.def");
        assert_eq!(bearer(&parts(Some("bearer abc"))).unwrap(), "abc");
        for bad in [
            None,
            Some("Basic abc"),
            Some("Bearer"),
            Some("Bearer  "),
            Some("Bearer a b"),
        ] {
            let e = bearer(&parts(bad)).unwrap_err();
            assert_eq!(e.code, ErrorCode::Unauthorized, "{bad:?}");
        }
    }

    #[test]
    fn json_content_types_are_recognised() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("Application/JSON; charset=utf-8"));
        assert!(is_json_content_type("application/problem+json"));
        assert!(!is_json_content_type("text/plain"));
    }
}
