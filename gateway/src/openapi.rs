//! The OpenAPI 3.1 document: operations come from the handlers' `#[utoipa::path]`s, and
//! [`add_common_errors`] adds the error answers every operation of a kind can give, so each
//! status the gateway can send is documented with the one error body.
//! [`html`] renders the document as a self-contained page.

pub mod html;

use crate::error::ErrorBody;
use utoipa::openapi::content::Content;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, Ref, RefOr, Type};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "carehub API", description = "The carehub clinic platform's HTTP API."),
    components(schemas(ErrorBody)),
    modifiers(&BearerScheme),
    tags(
        (name = "health", description = "Liveness and readiness probes"),
        (name = "auth", description = "Accounts, sessions and passwords"),
        (name = "admin", description = "Account administration (active admins only)"),
        (name = "doctors", description = "The doctor directory, free slots, and doctors' own profiles and availability"),
        (name = "notifications", description = "The caller's in-app notifications"),
        (name = "patients", description = "Patient profiles and medical records"),
        (name = "appointments", description = "Appointment requests, bookings and doctors' offers"),
    )
)]
struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document's skeleton (info, tags, security scheme, error schema) before routes are added.
pub(crate) fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The full OpenAPI document, as served at `/api/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = crate::routes::api().split_for_parts();
    add_common_errors(&mut doc);
    doc
}

/// The document as JSON: what `/api/openapi.json` serves and `carehub openapi` prints (the
/// web client's types are generated from it).
///
/// # Errors
/// When the document cannot be serialised (a bug).
pub fn to_json() -> serde_json::Result<serde_json::Value> {
    serde_json::to_value(openapi())
}

/// Adds the error responses that follow from an operation's shape: any `/api` call can be rate
/// limited or find a service down or slow; a body can be malformed, too large, of the wrong type
/// or invalid; parameters can be malformed; a bearer token can be missing or bad.
fn add_common_errors(doc: &mut utoipa::openapi::OpenApi) {
    for (path, item) in &mut doc.paths.paths {
        let api = path.starts_with("/api");
        let ops = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for op in ops.into_iter().flatten() {
            let mut codes: Vec<(u16, &str)> = Vec::new();
            if op.request_body.is_some() {
                codes.extend([
                    (400, "Malformed JSON"),
                    (413, "Body too large"),
                    (415, "Body is not application/json"),
                    (422, "A field is missing or invalid"),
                ]);
            }
            if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                codes.push((400, "Malformed path or query parameter"));
            }
            if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                codes.push((401, "Missing, malformed, expired or revoked bearer token"));
            }
            if api {
                codes.extend([
                    (403, "Not allowed, or the account is disabled"),
                    (429, "Too many requests; see Retry-After"),
                    (500, "Internal error"),
                    (503, "A required service is unavailable"),
                    (504, "A required service did not answer in time"),
                ]);
            }
            for (code, description) in codes {
                add_error(op, code, description);
            }
        }
    }
}

fn add_error(op: &mut Operation, code: u16, description: &str) {
    let key = code.to_string();
    if op.responses.responses.contains_key(&key) {
        return;
    }
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        Content::new(Some(Ref::from_schema_name("ErrorBody"))),
    );
    if code == 429 {
        let seconds = ObjectBuilder::new().schema_type(Type::Integer).build();
        let mut header = Header::new(seconds);
        header.description = Some("Seconds until a retry can succeed".into());
        response = response.header("Retry-After", header);
    }
    op.responses
        .responses
        .insert(key, RefOr::T(response.build()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_route_with_its_method() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let expected = [
            ("/healthz", "get"),
            ("/readyz", "get"),
            ("/api/auth/register", "post"),
            ("/api/auth/login", "post"),
            ("/api/auth/refresh", "post"),
            ("/api/auth/logout", "post"),
            ("/api/me", "get"),
            ("/api/me", "patch"),
            ("/api/auth/password/change", "post"),
            ("/api/auth/password/reset-request", "post"),
            ("/api/auth/password/reset-confirm", "post"),
            ("/api/admin/users", "get"),
            ("/api/admin/users/{id}", "get"),
            ("/api/admin/users/{id}/approve", "post"),
            ("/api/admin/users/{id}/reject", "post"),
            ("/api/admin/users/{id}/disable", "post"),
            ("/api/admin/users/{id}/enable", "post"),
            ("/api/doctors", "get"),
            ("/api/doctors/{id}", "get"),
            ("/api/doctors/{id}/slots", "get"),
            ("/api/doctors/me/profile", "get"),
            ("/api/doctors/me/profile", "put"),
            ("/api/doctors/me/availability", "get"),
            ("/api/doctors/me/availability", "put"),
            ("/api/doctors/me/time-off", "post"),
            ("/api/doctors/me/time-off/{id}", "delete"),
            ("/api/notifications", "get"),
            ("/api/notifications/unread-count", "get"),
            ("/api/notifications/{id}/read", "post"),
            ("/api/notifications/{id}/unread", "post"),
            ("/api/notifications/read-all", "post"),
            ("/api/notifications/{id}", "delete"),
            ("/api/appointments", "post"),
            ("/api/appointments", "get"),
            ("/api/appointments/book", "post"),
            ("/api/appointments/{id}", "get"),
            ("/api/offers", "get"),
            ("/api/appointments/{id}/accept", "post"),
            ("/api/appointments/{id}/decline", "post"),
            ("/api/appointments/{id}/reschedule", "post"),
            ("/api/appointments/{id}/propose", "post"),
            ("/api/appointments/{id}/proposal", "post"),
            ("/api/appointments/{id}/cancel", "post"),
            ("/api/appointments/{id}/complete", "post"),
            ("/api/appointments/{id}/no-show", "post"),
            ("/api/admin/appointments/{id}/decline", "post"),
            ("/api/admin/appointments/{id}/reroute", "post"),
            ("/api/admin/groups", "get"),
            ("/api/admin/groups", "post"),
            ("/api/admin/groups/{id}", "put"),
            ("/api/admin/audit", "get"),
            ("/api/groups", "get"),
            ("/api/patients/me/profile", "get"),
            ("/api/patients/me/profile", "put"),
            ("/api/patients/me/record", "get"),
            ("/api/patients/me/record", "put"),
            ("/api/patients/{id}/record", "get"),
            ("/api/patients/{id}/profile", "get"),
        ];
        let paths = doc["paths"].as_object().unwrap();
        let distinct: std::collections::BTreeSet<&str> = expected.iter().map(|(p, _)| *p).collect();
        assert_eq!(paths.len(), distinct.len(), "{:?}", paths.keys());
        for (path, method) in expected {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} missing"
            );
        }
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        // Operation ids are unique (OpenAPI requires it; the client's generator refuses repeats).
        let mut ids = std::collections::BTreeSet::new();
        for item in paths.values() {
            for op in item.as_object().unwrap().values() {
                if let Some(id) = op["operationId"].as_str() {
                    assert!(ids.insert(id), "operationId {id} repeats");
                }
            }
        }
        // Every reference resolves (schemathesis skips what it cannot resolve).
        let text = doc.to_string();
        for name in text.split("#/components/schemas/").skip(1) {
            let name = name.split('"').next().unwrap();
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{name} unresolved"
            );
        }
        // The limits auth enforces are stated, so valid-looking input is accepted.
        let register = &doc["paths"]["/api/auth/register"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["properties"];
        assert_eq!(register["password"]["minLength"], 10);
        assert_eq!(register["email"]["format"], "email");
        // The account's time zone is optional, and only names the services know are offered.
        for (path, method) in [("/api/auth/register", "post"), ("/api/me", "patch")] {
            let schema =
                &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
            let schema = match schema["$ref"].as_str() {
                Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
                None => schema,
            };
            let zones = schema["properties"]["time_zone"]["enum"]
                .as_array()
                .unwrap();
            assert!(zones.iter().any(|z| z == "Asia/Tokyo"), "{path}");
            assert!(!zones.iter().any(|z| z == "Mars/Olympus"), "{path}");
            let required = schema["required"].as_array().cloned().unwrap_or_default();
            assert!(!required.iter().any(|f| f == "time_zone"), "{path}");
        }
    }

    #[test]
    fn errors_are_documented_with_the_error_body_by_operation_shape() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let login = &doc["paths"]["/api/auth/login"]["post"]["responses"];
        for code in ["400", "413", "415", "422", "429", "503", "504"] {
            assert_eq!(
                login[code]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "login {code}"
            );
        }
        assert!(login["429"]["headers"]["Retry-After"].is_object());
        let me = &doc["paths"]["/api/me"]["get"]["responses"];
        assert!(me["401"].is_object());
        assert!(me["415"].is_null(), "a body-less route cannot answer 415");
        assert!(doc["paths"]["/healthz"]["get"]["responses"]["429"].is_null());
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }

    /// The schema of an operation's JSON body, inline or referenced.
    fn body<'a>(doc: &'a serde_json::Value, path: &str, method: &str) -> &'a serde_json::Value {
        let schema =
            &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
        match schema["$ref"].as_str() {
            Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
            None => schema,
        }
    }

    #[test]
    fn bodies_state_the_rules_the_services_check_and_say_the_rest_in_words() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let time_off = &body(&doc, "/api/doctors/me/time-off", "post")["properties"];
        for field in ["start", "end"] {
            assert_eq!(time_off[field]["format"], "date-time", "time off {field}");
        }
        assert!(
            time_off["end"]["description"]
                .as_str()
                .unwrap()
                .contains("after `start`")
        );
        let specialties =
            &body(&doc, "/api/doctors/me/profile", "put")["properties"]["specialties"];
        assert_eq!(specialties["minItems"], 1);
        assert_eq!(specialties["maxItems"], 10);
        assert_eq!(specialties["items"]["minLength"], 1);
        assert_eq!(specialties["items"]["maxLength"], 50);
        assert!(specialties["items"]["pattern"].is_string());
        let availability = &body(&doc, "/api/doctors/me/availability", "put")["properties"];
        let zones = availability["time_zone"]["enum"].as_array().unwrap();
        for zone in ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires"] {
            assert!(zones.iter().any(|z| z == zone), "{zone}");
        }
        let book = &body(&doc, "/api/appointments/book", "post")["properties"];
        let start = book["start"]["description"].as_str().unwrap();
        assert!(
            start.contains("slot start") && start.contains("future"),
            "{start}"
        );
        let slots = doc["paths"]["/api/doctors/{id}/slots"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let to = slots.iter().find(|p| p["name"] == "to").unwrap();
        assert_eq!(to["schema"]["format"], "date-time");
        assert!(to["description"].as_str().unwrap().contains("after `from`"));
    }

    #[test]
    fn an_absence_409_documents_the_affected_appointments_as_data() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let resolve = |v: &serde_json::Value| -> serde_json::Value {
            match v["$ref"].as_str() {
                Some(r) => schemas[r.trim_start_matches("#/components/schemas/")].clone(),
                None => v.clone(),
            }
        };
        for (path, method) in [
            ("/api/doctors/me/time-off", "post"),
            ("/api/admin/users/{id}/disable", "post"),
        ] {
            let conflict = &doc["paths"][path][method]["responses"]["409"];
            assert!(
                conflict["description"]
                    .as_str()
                    .unwrap()
                    .contains("`appointments_affected`"),
                "{path}"
            );
            let body = resolve(&conflict["content"]["application/json"]["schema"]);
            let error = resolve(&body["properties"]["error"]);
            let details = &error["properties"]["details"];
            // Optional (absent for other codes), so never in `required`.
            assert!(
                !error["required"]
                    .as_array()
                    .unwrap()
                    .contains(&"details".into()),
                "{error}"
            );
            let details = resolve(
                details["oneOf"]
                    .as_array()
                    .and_then(|o| o.iter().find(|s| s["$ref"].is_string()))
                    .unwrap_or(details),
            );
            let item = resolve(&details["properties"]["appointments"]["items"]);
            for field in ["id", "start", "end", "patient_name", "status"] {
                assert!(
                    item["properties"][field].is_object(),
                    "{path}: {field} in {item}"
                );
            }
            assert_eq!(item["properties"]["start"]["format"], "date-time");
            let required = item["required"].as_array().unwrap();
            for field in ["id", "start", "end", "status"] {
                assert!(required.contains(&field.into()), "{field} required");
            }
        }
    }
}
