//! Who may call what, for every operation in `/api/openapi.json`: each one is called as
//! nobody, as another patient, as a doctor not on the appointment, and as an admin, against
//! fixtures belonging to a patient P and a doctor D, and the answers are compared with the
//! table below. Someone else's data is 404, the wrong role 403, no token 401.
//!
//! An operation in the document with no row in the table fails the test (so a new route must
//! say who may call it), and so does a row for an operation the document no longer has.
//! Rows run in table order, each by the four callers in turn; writes that succeed change the
//! fixtures, so a row's expectations may depend on rows above it.

use crate::appointments::{
    As, DEADLINE, admin, doctors, group, patient, signed_in, wait_offered, window_in,
};
use crate::both_backends;
use crate::harness::{Backend, Clinic, PASSWORD, unique_email};
use crate::support::wait;
use carehub_nats::Role;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;

both_backends!(every_route_answers_each_caller_as_the_table_says);

/// What a caller should get.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Open to anyone: the status an anonymous call with the row's body gets.
    Public(u16),
    /// Needs a token (anonymous gets 401): the status for another patient, a doctor not on
    /// the appointment, and an admin.
    Private {
        patient: u16,
        doctor: u16,
        admin: u16,
    },
}

/// One operation, called with concrete ids and a schema-valid body.
struct Row {
    method: Method,
    /// The path as the OpenAPI document writes it.
    template: &'static str,
    /// The path called: `template` with ids filled in, plus any query.
    call: String,
    body: Option<Value>,
    expect: Expect,
}

fn private(patient: u16, doctor: u16, admin: u16) -> Expect {
    Expect::Private {
        patient,
        doctor,
        admin,
    }
}

fn row(
    method: Method,
    template: &'static str,
    id: &str,
    body: Option<Value>,
    expect: Expect,
) -> Row {
    Row {
        call: template.replace("{id}", id),
        method,
        template,
        body,
        expect,
    }
}

/// Someone else's resources the rows aim at.
struct Fixtures<'a> {
    /// P, signed in (for checking afterwards that nothing of theirs changed).
    p: As<'a>,
    /// P's notification.
    notification: String,
    /// P's id (whose record is read).
    patient: String,
    /// D's id.
    doctor: String,
    /// A confirmed appointment of P with D.
    confirmed: String,
    /// Open requests of P offered to D: one an admin cancels, one an admin declines, one an
    /// admin re-routes.
    to_cancel: String,
    to_decline: String,
    to_reroute: String,
    group: String,
    /// A time off period of D.
    time_off: String,
    /// An account only the admin rows change.
    user: String,
    window: crate::appointments::Window,
}

/// The table: every documented operation, in the order the rows run.
fn table(f: &Fixtures<'_>) -> Vec<Row> {
    use Expect::Public;
    let reason = || Some(json!({"reason": "a reason"}));
    let w = &f.window;
    let weekly = json!([{"weekday": "monday", "start": "09:00", "end": "17:00"}]);
    let group_body = json!({"name": "Cardiology", "strategy": "round_robin",
        "accept_deadline_secs": 600, "members": [f.doctor]});
    let slots = format!(
        "/api/doctors/{}/slots?from={}&to={}",
        f.doctor, w.start, w.end
    );
    vec![
        // Health and sign-in: open to anyone.
        row(Method::GET, "/healthz", "", None, Public(200)),
        row(Method::GET, "/readyz", "", None, Public(200)),
        row(
            Method::POST,
            "/api/auth/register",
            "",
            Some(json!({"email": unique_email("authz"), "password": PASSWORD,
                "display_name": "New Person"})),
            Public(202),
        ),
        row(
            Method::POST,
            "/api/auth/login",
            "",
            Some(json!({"email": unique_email("nobody"), "password": PASSWORD})),
            Public(401),
        ),
        row(
            Method::POST,
            "/api/auth/refresh",
            "",
            Some(json!({"refresh_token": "not-a-refresh-token"})),
            Public(401),
        ),
        row(
            Method::POST,
            "/api/auth/password/reset-request",
            "",
            Some(json!({"email": unique_email("nobody")})),
            Public(202),
        ),
        row(
            Method::POST,
            "/api/auth/password/reset-confirm",
            "",
            Some(json!({"token": "chp_not-a-token", "new_password": "a long new password"})),
            Public(401),
        ),
        // One's own account.
        row(Method::GET, "/api/me", "", None, private(200, 200, 200)),
        // Each caller sets its own zone; nobody else's account is reachable here.
        row(
            Method::PATCH,
            "/api/me",
            "",
            Some(json!({"time_zone": "UTC"})),
            private(200, 200, 200),
        ),
        row(
            Method::POST,
            "/api/auth/password/change",
            "",
            Some(
                json!({"current_password": "not the password", "new_password": "a long new password"}),
            ),
            // A wrong current password is refused, the session stays.
            private(403, 403, 403),
        ),
        // Account administration.
        row(
            Method::GET,
            "/api/admin/users",
            "",
            None,
            private(403, 403, 200),
        ),
        row(
            Method::GET,
            "/api/admin/users/{id}",
            &f.user,
            None,
            private(403, 403, 200),
        ),
        row(
            Method::POST,
            "/api/admin/users/{id}/approve",
            &f.user,
            reason(),
            private(403, 403, 409),
        ),
        row(
            Method::POST,
            "/api/admin/users/{id}/reject",
            &f.user,
            reason(),
            private(403, 403, 409),
        ),
        row(
            Method::POST,
            "/api/admin/users/{id}/disable",
            &f.user,
            reason(),
            private(403, 403, 200),
        ),
        row(
            Method::POST,
            "/api/admin/users/{id}/enable",
            &f.user,
            reason(),
            private(403, 403, 200),
        ),
        // The doctor directory and a doctor's own settings.
        row(
            Method::GET,
            "/api/doctors",
            "",
            None,
            private(200, 200, 200),
        ),
        row(
            Method::GET,
            "/api/doctors/{id}",
            &f.doctor,
            None,
            private(200, 200, 200),
        ),
        Row {
            call: slots,
            ..row(
                Method::GET,
                "/api/doctors/{id}/slots",
                "",
                None,
                private(200, 200, 200),
            )
        },
        row(
            Method::GET,
            "/api/doctors/me/profile",
            "",
            None,
            private(403, 200, 403),
        ),
        row(
            Method::PUT,
            "/api/doctors/me/profile",
            "",
            Some(json!({"specialties": ["cardiology"], "bio": "Hearts."})),
            private(403, 200, 403),
        ),
        row(
            Method::GET,
            "/api/doctors/me/availability",
            "",
            None,
            private(403, 200, 403),
        ),
        row(
            Method::PUT,
            "/api/doctors/me/availability",
            "",
            Some(
                json!({"expected_version": 0, "time_zone": "UTC", "weekly": weekly,
                "slot_minutes": 30, "auto_accept": false}),
            ),
            private(403, 409, 403),
        ),
        row(
            Method::POST,
            "/api/doctors/me/time-off",
            "",
            Some(
                json!({"start": "2099-01-01T00:00:00Z", "end": "2099-01-02T00:00:00Z",
                "reason": "holiday"}),
            ),
            private(403, 201, 403),
        ),
        row(
            Method::DELETE,
            "/api/doctors/me/time-off/{id}",
            &f.time_off,
            None,
            private(403, 404, 403),
        ),
        // Patients.
        row(
            Method::GET,
            "/api/patients/me/profile",
            "",
            None,
            private(200, 403, 403),
        ),
        row(
            Method::PUT,
            "/api/patients/me/profile",
            "",
            Some(json!({"phone": "+44 20 7946 0958"})),
            private(200, 403, 403),
        ),
        row(
            Method::GET,
            "/api/patients/me/record",
            "",
            None,
            private(200, 403, 403),
        ),
        row(
            Method::PUT,
            "/api/patients/me/record",
            "",
            Some(json!({"blood_type": "O+"})),
            private(200, 403, 403),
        ),
        row(
            Method::GET,
            "/api/patients/{id}/record",
            &f.patient,
            None,
            private(404, 404, 200),
        ),
        row(
            Method::GET,
            "/api/patients/{id}/profile",
            &f.patient,
            None,
            private(404, 404, 200),
        ),
        // Notifications: everyone has their own; P's are nobody else's.
        row(
            Method::GET,
            "/api/notifications",
            "",
            None,
            private(200, 200, 200),
        ),
        row(
            Method::GET,
            "/api/notifications/unread-count",
            "",
            None,
            private(200, 200, 200),
        ),
        row(
            Method::POST,
            "/api/notifications/{id}/read",
            &f.notification,
            None,
            private(404, 404, 404),
        ),
        row(
            Method::POST,
            "/api/notifications/{id}/unread",
            &f.notification,
            None,
            private(404, 404, 404),
        ),
        row(
            Method::POST,
            "/api/notifications/read-all",
            "",
            None,
            private(200, 200, 200),
        ),
        row(
            Method::DELETE,
            "/api/notifications/{id}",
            &f.notification,
            None,
            private(404, 404, 404),
        ),
        // Appointments.
        row(
            Method::POST,
            "/api/appointments",
            "",
            Some(
                json!({"target": {"doctor": f.doctor}, "window_start": w.start,
                "window_end": w.end, "reason": "a check-up"}),
            ),
            private(201, 403, 403),
        ),
        row(
            Method::POST,
            "/api/appointments/book",
            "",
            Some(json!({"doctor_id": f.doctor, "start": w.start, "reason": "a check-up"})),
            private(422, 403, 403),
        ),
        row(
            Method::GET,
            "/api/appointments",
            "",
            None,
            private(200, 200, 200),
        ),
        row(
            Method::GET,
            "/api/appointments/{id}",
            &f.confirmed,
            None,
            private(404, 404, 200),
        ),
        row(Method::GET, "/api/offers", "", None, private(403, 200, 403)),
        row(
            Method::POST,
            "/api/appointments/{id}/accept",
            &f.confirmed,
            Some(json!({"start": w.start})),
            private(403, 404, 403),
        ),
        row(
            Method::POST,
            "/api/appointments/{id}/decline",
            &f.confirmed,
            reason(),
            private(403, 404, 403),
        ),
        row(
            Method::POST,
            "/api/appointments/{id}/reschedule",
            &f.confirmed,
            Some(json!({"window_start": w.start, "window_end": w.end})),
            private(404, 403, 403),
        ),
        row(
            Method::POST,
            "/api/appointments/{id}/propose",
            &f.confirmed,
            Some(json!({"start": w.start})),
            private(403, 404, 403),
        ),
        row(
            Method::POST,
            "/api/appointments/{id}/proposal",
            &f.confirmed,
            Some(json!({"accept": true})),
            private(404, 403, 403),
        ),
        row(
            Method::POST,
            "/api/appointments/{id}/complete",
            &f.confirmed,
            Some(json!({"notes": "All well."})),
            private(403, 404, 403),
        ),
        row(
            Method::POST,
            "/api/appointments/{id}/no-show",
            &f.confirmed,
            None,
            private(403, 404, 403),
        ),
        row(
            Method::POST,
            "/api/appointments/{id}/cancel",
            &f.to_cancel,
            reason(),
            private(404, 404, 200),
        ),
        row(
            Method::POST,
            "/api/admin/appointments/{id}/decline",
            &f.to_decline,
            reason(),
            private(403, 403, 200),
        ),
        row(
            Method::POST,
            "/api/admin/appointments/{id}/reroute",
            &f.to_reroute,
            Some(json!({"target": {"group": f.group}})),
            private(403, 403, 200),
        ),
        // Groups and the audit trail.
        row(Method::GET, "/api/groups", "", None, private(200, 200, 200)),
        row(
            Method::GET,
            "/api/admin/groups",
            "",
            None,
            private(403, 403, 200),
        ),
        row(
            Method::POST,
            "/api/admin/groups",
            "",
            Some(group_body.clone()),
            private(403, 403, 201),
        ),
        row(
            Method::PUT,
            "/api/admin/groups/{id}",
            &f.group,
            Some(group_body),
            private(403, 403, 200),
        ),
        row(
            Method::GET,
            "/api/admin/audit",
            "",
            None,
            private(403, 403, 200),
        ),
        // Last: it ends the callers' sessions.
        row(
            Method::POST,
            "/api/auth/logout",
            "",
            None,
            private(200, 200, 200),
        ),
    ]
}

/// Routes served outside the OpenAPI document, open to anyone.
const UNDOCUMENTED_PUBLIC: [&str; 2] = ["/api/openapi.json", "/api/docs"];

/// Every (METHOD, path) in the document.
async fn documented(clinic: &Clinic) -> BTreeSet<(String, String)> {
    let r = clinic
        .http
        .get(clinic.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
            if item.get(method).is_some() {
                out.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out
}

async fn call(clinic: &Clinic, token: Option<&str>, r: &Row) -> (u16, String) {
    let key = uuid::Uuid::new_v4().simple().to_string();
    let mut req = clinic
        .http
        .request(r.method.clone(), clinic.url(&r.call))
        .header("Idempotency-Key", key)
        .header("If-Match", "\"1\"");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = &r.body {
        req = req.json(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// P with a record and a notification, D with a confirmed appointment with P, three open
/// requests of P offered to D, a time off of D, a group, and a spare account.
async fn fixtures<'a>(clinic: &'a Clinic, admin: &As<'_>, d: &As<'_>) -> Fixtures<'a> {
    let p = patient(clinic).await;
    let r = p.get("/api/patients/me/record").await;
    assert_eq!(r.status(), 200);
    let r = p
        .send(
            Method::PUT,
            "/api/patients/me/record",
            &json!({"blood_type": "AB-"}),
            &[("If-Match", "\"1\"")],
        )
        .await;
    assert_eq!(r.status(), 200, "record: {}", r.text().await.unwrap());

    let w = window_in(2);
    let confirmed = p.requested(json!({"doctor": d.id}), &w).await;
    wait_offered(d, &confirmed).await;
    let r = d
        .post(
            &format!("/api/appointments/{confirmed}/accept"),
            &json!({"start": w.start}),
        )
        .await;
    assert_eq!(r.status(), 200, "accept: {}", r.text().await.unwrap());
    let mut open = Vec::new();
    for _ in 0..3 {
        let id = p.requested(json!({"doctor": d.id}), &w).await;
        wait_offered(d, &id).await;
        open.push(id);
    }
    let notification = wait::until("a notification of P", DEADLINE, || async {
        let page = p.json("/api/notifications").await;
        page["notifications"].as_array()?.first()?["id"]
            .as_str()
            .map(str::to_owned)
    })
    .await;

    let current = d.json("/api/doctors/me/availability").await;
    let r = d
        .post(
            "/api/doctors/me/time-off",
            &json!({"start": "2098-01-01T00:00:00Z", "end": "2098-01-02T00:00:00Z",
                "reason": "away", "expected_version": current["version"]}),
        )
        .await;
    assert_eq!(r.status(), 201, "time off: {}", r.text().await.unwrap());
    let added: Value = r.json().await.unwrap();
    let time_off = added["time_off"]["id"].as_str().unwrap().to_owned();

    let g = group(admin, "broadcast", 3600, &[d]).await;
    let user = clinic
        .create_user(Role::Patient, &unique_email("spare"))
        .await;
    Fixtures {
        notification,
        patient: p.id.clone(),
        p,
        doctor: d.id.clone(),
        confirmed,
        to_cancel: open[0].clone(),
        to_decline: open[1].clone(),
        to_reroute: open[2].clone(),
        group: g,
        time_off,
        user: user["id"].as_str().unwrap().to_owned(),
        window: w,
    }
}

async fn every_route_answers_each_caller_as_the_table_says(b: Backend) {
    let clinic = Clinic::start(b).await;
    let admin = admin(&clinic).await;
    let docs = doctors(&clinic, 2).await;
    let (d, other_doctor) = (&docs[0], &docs[1]);
    let f = fixtures(&clinic, &admin, d).await;
    let other_patient = {
        let s = clinic.patient(&unique_email("other")).await;
        signed_in(&clinic, &s).await
    };
    let rows = table(&f);

    // The table and the document list the same operations.
    let in_doc = documented(&clinic).await;
    let in_table: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r.method.as_str().to_owned(), r.template.to_owned()))
        .collect();
    assert_eq!(in_table.len(), rows.len(), "an operation is listed twice");
    let missing: Vec<_> = in_doc.difference(&in_table).collect();
    let stale: Vec<_> = in_table.difference(&in_doc).collect();
    assert!(
        missing.is_empty(),
        "documented routes with no row in the authorization table: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "rows for routes the document no longer has: {stale:?}"
    );
    for path in UNDOCUMENTED_PUBLIC {
        let r = clinic.http.get(clinic.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} is open to anyone");
    }

    let mut wrong = Vec::new();
    let mut check = |who: &str, r: &Row, want: u16, (got, body): (u16, String)| {
        if got != want {
            wrong.push(format!(
                "{} {} as {who}: expected {want}, got {got} {body}",
                r.method, r.call
            ));
        }
    };
    for r in &rows {
        match r.expect {
            Expect::Public(status) => check("anonymous", r, status, call(&clinic, None, r).await),
            Expect::Private {
                patient,
                doctor,
                admin: for_admin,
            } => {
                check("anonymous", r, 401, call(&clinic, None, r).await);
                let callers = [
                    ("another patient", &other_patient, patient),
                    ("a doctor not on the appointment", other_doctor, doctor),
                    ("an admin", &admin, for_admin),
                ];
                for (who, caller, want) in callers {
                    check(who, r, want, call(&clinic, Some(&caller.token), r).await);
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} unexpected answers:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // Nothing of P's was changed by the callers who had no business with it.
    let mine = f.p.json("/api/notifications").await;
    let note = mine["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == f.notification.as_str())
        .cloned()
        .expect("P's notification is still there");
    assert!(note["read_at"].is_null(), "and still unread: {note}");
    let confirmed =
        f.p.json(&format!("/api/appointments/{}", f.confirmed))
            .await;
    assert_eq!(confirmed["appointment"]["status"], "confirmed");
    let record = f.p.json("/api/patients/me/record").await;
    assert_eq!(record["blood_type"], "AB-");
}
