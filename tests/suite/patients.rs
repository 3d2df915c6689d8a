//! Patient profiles and medical records: versioned edits by the patient, and who else may read a
//! record (admins, doctors with a care relation), with every such read audited.

use crate::appointments::{DEADLINE, admin, doctors, signed_in, wait_offered, window_in};
use crate::both_backends;
use crate::harness::{Backend, Clinic, PASSWORD, error_code, token, unique_email};
use crate::support::wait;
use carehub::system::Component;
use carehub_nats::Role;
use serde_json::{Value, json};
use std::time::Duration;

both_backends!(
    a_patient_edits_their_record_by_version_and_a_stale_edit_changes_nothing,
    a_patient_edits_their_profile_by_version_and_sees_their_account_name,
    bad_record_and_profile_input_is_refused_with_a_stable_code_and_changes_nothing,
    insurance_is_kept_with_the_profile_and_bad_policies_are_refused_naming_the_field,
    another_patient_gets_not_found_and_an_admin_reads_with_exactly_one_audit_entry,
    doctor_reads_follow_the_care_relation_and_are_refused_when_it_cannot_be_asked,
    a_doctor_with_no_care_relation_gets_not_found,
    a_doctor_with_a_confirmed_appointment_reads_the_record_and_the_read_is_audited,
);

fn id(session: &Value) -> String {
    session["user"]["id"].as_str().unwrap().to_owned()
}

async fn get(clinic: &Clinic, session: &Value, path: &str) -> reqwest::Response {
    clinic
        .http
        .get(clinic.url(path))
        .bearer_auth(token(session))
        .send()
        .await
        .unwrap()
}

async fn put(
    clinic: &Clinic,
    session: &Value,
    path: &str,
    if_match: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut req = clinic
        .http
        .put(clinic.url(path))
        .bearer_auth(token(session))
        .json(body);
    if let Some(v) = if_match {
        req = req.header("if-match", v);
    }
    req.send().await.unwrap()
}

fn etag(r: &reqwest::Response) -> String {
    r.headers()["etag"].to_str().unwrap().to_owned()
}

fn a_record() -> Value {
    json!({
        "allergies": [{"substance": "penicillin", "reaction": "hives", "severity": "severe"}],
        "conditions": [{"name": "asthma", "since": "2001-05-01"}],
        "medications": [{"name": "salbutamol", "dose": "100 µg", "frequency": "as needed"}],
        "blood_type": "AB-",
        "notes": "Carries an inhaler."
    })
}

/// A patient with one saved record (version 2).
async fn patient_with_record(clinic: &Clinic) -> Value {
    let s = clinic.patient(&unique_email("pat")).await;
    let r = get(clinic, &s, "/api/patients/me/record").await;
    assert_eq!(r.status(), 200);
    let r = put(
        clinic,
        &s,
        "/api/patients/me/record",
        Some(&etag(&r)),
        &a_record(),
    )
    .await;
    assert_eq!(r.status(), 200);
    s
}

async fn a_patient_edits_their_record_by_version_and_a_stale_edit_changes_nothing(b: Backend) {
    let clinic = Clinic::start(b).await;
    let s = clinic.patient(&unique_email("rec")).await;

    let r = get(&clinic, &s, "/api/patients/me/record").await;
    assert_eq!(r.status(), 200);
    assert_eq!(etag(&r), "\"1\"");
    let empty: Value = r.json().await.unwrap();
    assert_eq!(empty["patient_id"], id(&s).as_str());
    assert_eq!(empty["version"], 1);
    assert_eq!(empty["allergies"], json!([]));
    assert_eq!(empty["blood_type"], "unknown");

    let r = put(&clinic, &s, "/api/patients/me/record", None, &a_record()).await;
    assert_eq!(
        r.status(),
        428,
        "an edit must say which version it replaces"
    );
    assert_eq!(error_code(r).await, "precondition_required");

    let r = put(
        &clinic,
        &s,
        "/api/patients/me/record",
        Some("\"1\""),
        &a_record(),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(etag(&r), "\"2\"");
    let saved: Value = r.json().await.unwrap();
    assert_eq!(saved["version"], 2);
    assert_eq!(saved["blood_type"], "AB-");
    assert_eq!(saved["allergies"][0]["severity"], "severe");
    assert_eq!(saved["medications"][0]["dose"], "100 µg");

    // Someone editing from the old version loses, and nothing of theirs is kept.
    let other = json!({"blood_type": "O+", "notes": "overwritten"});
    let r = put(
        &clinic,
        &s,
        "/api/patients/me/record",
        Some("\"1\""),
        &other,
    )
    .await;
    assert_eq!(r.status(), 412, "a stale If-Match is a failed precondition");
    assert_eq!(error_code(r).await, "precondition_failed");
    // Comparison is strong: the weak form of the current version never matches either.
    let r = put(
        &clinic,
        &s,
        "/api/patients/me/record",
        Some("W/\"2\""),
        &other,
    )
    .await;
    assert_eq!(r.status(), 412, "a weak validator never matches");
    assert_eq!(error_code(r).await, "precondition_failed");
    let r = get(&clinic, &s, "/api/patients/me/record").await;
    assert_eq!(etag(&r), "\"2\"");
    let now: Value = r.json().await.unwrap();
    assert_eq!(now, saved);

    let r = put(
        &clinic,
        &s,
        "/api/patients/me/record",
        Some("\"2\""),
        &other,
    )
    .await;
    assert_eq!(r.status(), 200, "the current version wins");
    let last: Value = r.json().await.unwrap();
    assert_eq!(last["version"], 3);
    assert_eq!(last["blood_type"], "O+");
    assert_eq!(
        last["allergies"],
        json!([]),
        "an update replaces the record"
    );

    // `If-Match: *` replaces whatever version is current, on the record and the profile.
    let r = put(
        &clinic,
        &s,
        "/api/patients/me/record",
        Some("*"),
        &a_record(),
    )
    .await;
    assert_eq!(r.status(), 200, "If-Match: *: {}", r.text().await.unwrap());
    assert_eq!(etag(&r), "\"4\"");
    let r = put(
        &clinic,
        &s,
        "/api/patients/me/profile",
        Some("*"),
        &json!({"phone": "+49 30 1234567"}),
    )
    .await;
    assert_eq!(
        r.status(),
        200,
        "If-Match: * on the profile: {}",
        r.text().await.unwrap()
    );
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["phone"], "+49 30 1234567");
    assert_eq!(p["version"], 2);
}

async fn a_patient_edits_their_profile_by_version_and_sees_their_account_name(b: Backend) {
    let clinic = Clinic::start(b).await;
    let s = clinic.patient(&unique_email("prof")).await;
    let profile = json!({
        "date_of_birth": "1980-02-29",
        "phone": "+44 20 7946 0958",
        "address": {"line1": "1 Main St", "city": "Leeds", "postal_code": "LS1 1AA", "country": "UK"},
        "emergency_contact": {"name": "Sam", "phone": "0113 496 0000", "relationship": "sister"}
    });
    let r = put(
        &clinic,
        &s,
        "/api/patients/me/profile",
        Some("\"1\""),
        &profile,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(etag(&r), "\"2\"");
    let saved: Value = r.json().await.unwrap();
    assert_eq!(saved["date_of_birth"], "1980-02-29");
    assert_eq!(saved["address"]["city"], "Leeds");
    assert_eq!(saved["emergency_contact"]["relationship"], "sister");

    let r = put(
        &clinic,
        &s,
        "/api/patients/me/profile",
        Some("\"1\""),
        &json!({}),
    )
    .await;
    assert_eq!(r.status(), 412);

    // The display name comes from the account, once its event has arrived.
    let shown = wait::until(
        "the account name on the profile",
        Duration::from_secs(10),
        || async {
            let r = get(&clinic, &s, "/api/patients/me/profile").await;
            let body: Value = r.json().await.ok()?;
            (body["display_name"] == "Pat Ient").then_some(body)
        },
    )
    .await;
    assert_eq!(shown["version"], 2);
    assert_eq!(shown["phone"], "+44 20 7946 0958");

    // The `me` routes are a patient's own.
    let admin = clinic.create_user(Role::Admin, &unique_email("adm")).await;
    let admin_s = clinic
        .login(admin["email"].as_str().unwrap(), PASSWORD)
        .await;
    let r = get(&clinic, &admin_s, "/api/patients/me/profile").await;
    assert_eq!(r.status(), 403);
    let r = put(
        &clinic,
        &admin_s,
        "/api/patients/me/record",
        Some("\"1\""),
        &a_record(),
    )
    .await;
    assert_eq!(r.status(), 403, "admins read records, they never edit them");
}

async fn bad_record_and_profile_input_is_refused_with_a_stable_code_and_changes_nothing(
    b: Backend,
) {
    let clinic = Clinic::start(b).await;
    let s = patient_with_record(&clinic).await;
    let before: Value = get(&clinic, &s, "/api/patients/me/record")
        .await
        .json()
        .await
        .unwrap();

    let too_long = "x".repeat(5001);
    for (what, body) in [
        ("unknown blood type", json!({"blood_type": "C+"})),
        ("notes over 5000 characters", json!({"notes": too_long})),
        (
            "an allergy without a substance",
            json!({"allergies": [{"substance": " ", "reaction": "", "severity": "mild"}]}),
        ),
        (
            "an unknown severity",
            json!({"allergies": [{"substance": "nuts", "reaction": "", "severity": "awful"}]}),
        ),
    ] {
        let r = put(&clinic, &s, "/api/patients/me/record", Some("\"2\""), &body).await;
        assert_eq!(r.status(), 422, "{what}");
        assert_eq!(error_code(r).await, "validation_failed", "{what}");
    }
    let after: Value = get(&clinic, &s, "/api/patients/me/record")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after, before, "nothing changed");

    for dob in ["1990-02-30", "2999-01-01", "12/03/1990", "1850-01-01"] {
        let r = put(
            &clinic,
            &s,
            "/api/patients/me/profile",
            Some("\"1\""),
            &json!({"date_of_birth": dob}),
        )
        .await;
        assert_eq!(r.status(), 422, "{dob}");
        assert_eq!(error_code(r).await, "validation_failed", "{dob}");
    }
    let r = put(
        &clinic,
        &s,
        "/api/patients/me/profile",
        Some("\"1\""),
        &json!({"phone": "call me"}),
    )
    .await;
    assert_eq!(r.status(), 422);
    let r = get(&clinic, &s, "/api/patients/me/profile").await;
    assert_eq!(etag(&r), "\"1\"", "no bad edit landed");

    let r = put(
        &clinic,
        &s,
        "/api/patients/me/record",
        Some("two"),
        &a_record(),
    )
    .await;
    assert_eq!(r.status(), 400, "If-Match must be a quoted version");
    assert_eq!(error_code(r).await, "bad_request");
}

fn a_policy(rank: &str) -> Value {
    json!({
        "rank": rank,
        "payer": "Northwind Health",
        "member_id": "NWH-0042 7781",
        "group_number": "G-17",
        "holder": "Ada Lovelace",
        "relationship": "self",
        "valid_from": "2026-01-01",
        "valid_to": "2026-12-31"
    })
}

async fn insurance_is_kept_with_the_profile_and_bad_policies_are_refused_naming_the_field(
    b: Backend,
) {
    let clinic = Clinic::start(b).await;
    let s = clinic.patient(&unique_email("ins")).await;
    let path = "/api/patients/me/profile";
    let fresh: Value = get(&clinic, &s, path).await.json().await.unwrap();
    assert!(fresh.get("insurance").is_none(), "no policies yet: {fresh}");

    let mut spouse = a_policy("secondary");
    spouse["holder"] = json!("Sam Lovelace");
    spouse["relationship"] = json!("spouse");
    spouse["group_number"] = json!(" ");
    let body = json!({"phone": "+44 20 7946 0958", "insurance": [spouse, a_policy("primary")]});
    let r = put(&clinic, &s, path, Some("\"1\""), &body).await;
    assert_eq!(r.status(), 200);
    let saved: Value = r.json().await.unwrap();
    let policies = saved["insurance"].as_array().unwrap();
    assert_eq!(policies.len(), 2);
    assert_eq!(policies[0]["rank"], "primary", "the primary comes first");
    assert_eq!(policies[0]["member_id"], "NWH-0042 7781");
    assert_eq!(policies[1]["relationship"], "spouse");
    assert!(policies[1].get("group_number").is_none(), "blank clears");
    let read: Value = get(&clinic, &s, path).await.json().await.unwrap();
    assert_eq!(read["insurance"], saved["insurance"], "stored as saved");
    assert_eq!(read["version"], 2);

    for (what, policy, field) in [
        (
            "a member id with a slash",
            json!({"member_id": "NWH/42"}),
            "insurance[0].member_id",
        ),
        (
            "an empty payer",
            json!({"payer": "  "}),
            "insurance[0].payer",
        ),
        (
            "cover ending before it starts",
            json!({"valid_to": "2025-12-31"}),
            "insurance[0].valid_to",
        ),
        (
            "an impossible date",
            json!({"valid_from": "2026-02-30"}),
            "insurance[0].valid_from",
        ),
    ] {
        let mut p = a_policy("primary");
        for (k, v) in policy.as_object().unwrap() {
            p[k] = v.clone();
        }
        let r = put(&clinic, &s, path, Some("\"2\""), &json!({"insurance": [p]})).await;
        assert_eq!(r.status(), 422, "{what}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "validation_failed", "{what}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().starts_with(field),
            "{what}: {e}"
        );
    }
    for (what, policies) in [
        (
            "two primaries",
            json!([a_policy("primary"), a_policy("primary")]),
        ),
        ("a secondary alone", json!([a_policy("secondary")])),
        (
            "three policies",
            json!([
                a_policy("primary"),
                a_policy("secondary"),
                a_policy("secondary")
            ]),
        ),
        ("an unknown relationship", {
            let mut p = a_policy("primary");
            p["relationship"] = json!("cousin");
            json!([p])
        }),
    ] {
        let r = put(
            &clinic,
            &s,
            path,
            Some("\"2\""),
            &json!({"insurance": policies}),
        )
        .await;
        assert_eq!(r.status(), 422, "{what}");
    }
    let after: Value = get(&clinic, &s, path).await.json().await.unwrap();
    assert_eq!(after, read, "no bad edit landed");

    // A save without `insurance` clears it, like every other absent field of the profile.
    let r = put(
        &clinic,
        &s,
        path,
        Some("\"2\""),
        &json!({"phone": "+44 20 7946 0958"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let cleared: Value = r.json().await.unwrap();
    assert!(cleared.get("insurance").is_none(), "{cleared}");
}

/// Audit entries about `patient_id` in the stream.
async fn audit_entries(clinic: &Clinic, patient_id: &str) -> Vec<Value> {
    clinic
        .stream_messages("CAREHUB_AUDIT", "carehub.events.audit.patient")
        .await
        .into_iter()
        .filter(|e| e["subject_id"] == patient_id)
        .collect()
}

async fn another_patient_gets_not_found_and_an_admin_reads_with_exactly_one_audit_entry(
    b: Backend,
) {
    let clinic = Clinic::start(b).await;
    let owner = patient_with_record(&clinic).await;
    let pid = id(&owner);
    let path = format!("/api/patients/{pid}/record");

    let nosy = clinic.patient(&unique_email("nosy")).await;
    let r = get(&clinic, &nosy, &path).await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "not_found");
    let r = get(&clinic, &owner, &path).await;
    assert_eq!(
        r.status(),
        200,
        "the patient may use the id route for their own"
    );

    let admin = clinic.create_user(Role::Admin, &unique_email("adm")).await;
    let admin_s = clinic
        .login(admin["email"].as_str().unwrap(), PASSWORD)
        .await;
    let r = get(&clinic, &admin_s, &path).await;
    assert_eq!(r.status(), 200);
    assert_eq!(etag(&r), "\"2\"");
    let record: Value = r.json().await.unwrap();
    assert_eq!(record["blood_type"], "AB-");
    let r = get(&clinic, &admin_s, "/api/patients/no-such-patient/record").await;
    assert_eq!(r.status(), 404);

    let entries = wait::until(
        "the admin's read in the audit stream",
        Duration::from_secs(10),
        || async {
            let e = audit_entries(&clinic, &pid).await;
            (!e.is_empty()).then_some(e)
        },
    )
    .await;
    assert_eq!(entries.len(), 1, "one read, one entry: {entries:?}");
    let e = &entries[0];
    assert_eq!(e["actor_id"], id(&admin_s).as_str());
    assert_eq!(e["actor_role"], "admin");
    assert_eq!(e["action"], "medical_record.read");
    assert_eq!(e["reason"], "admin");
    assert_eq!(e["service"], "patient");
}

/// Answers the care-relation question in place of the admin service: `confirmed` for
/// `related`, a completion 40 days ago for `lapsed`, nothing for anyone else.
async fn fake_care_relations(
    clinic: &Clinic,
    related: String,
    lapsed: String,
) -> tokio::task::JoinHandle<()> {
    use futures::StreamExt as _;
    let nc = clinic.nats_client_as("admin").await;
    let mut sub = nc
        .subscribe(carehub_nats::appointment::subject::CARE_RELATION)
        .await
        .unwrap();
    nc.flush().await.unwrap();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let q: carehub_nats::appointment::CareRelation =
                serde_json::from_slice(&m.payload).unwrap();
            let now = carehub_runtime::db::now_ms();
            let reply = carehub_nats::appointment::CareRelationReply {
                open_offer: false,
                confirmed: q.patient_id == related,
                last_completed_at: (q.patient_id == lapsed).then_some(now - 40 * 86_400_000),
            };
            let body = serde_json::to_vec(&reply).unwrap();
            nc.publish(m.reply.unwrap(), body.into()).await.unwrap();
        }
    })
}

async fn doctor_reads_follow_the_care_relation_and_are_refused_when_it_cannot_be_asked(b: Backend) {
    // No admin service here: this test answers the care-relation question itself.
    let clinic = Clinic::start_with(
        b,
        &[],
        &[Component::Auth, Component::Patient, Component::Gateway],
    )
    .await;
    let related = patient_with_record(&clinic).await;
    let lapsed = patient_with_record(&clinic).await;
    let doctor = clinic.create_user(Role::Doctor, &unique_email("doc")).await;
    let doc_s = clinic
        .login(doctor["email"].as_str().unwrap(), PASSWORD)
        .await;
    let related_path = format!("/api/patients/{}/record", id(&related));

    let r = get(&clinic, &doc_s, &related_path).await;
    assert_eq!(
        r.status(),
        503,
        "no answer about the relation is never a yes"
    );
    assert_eq!(error_code(r).await, "service_unavailable");
    let r = get(&clinic, &doc_s, "/api/patients/no-such-patient/record").await;
    assert_eq!(r.status(), 404, "an unknown patient is simply not found");

    let fake = fake_care_relations(&clinic, id(&related), id(&lapsed)).await;
    let r = get(&clinic, &doc_s, &related_path).await;
    assert_eq!(r.status(), 200, "a confirmed appointment opens the record");
    let record: Value = r.json().await.unwrap();
    assert_eq!(record["patient_id"], id(&related).as_str());
    let r = get(
        &clinic,
        &doc_s,
        &format!("/api/patients/{}/record", id(&lapsed)),
    )
    .await;
    assert_eq!(
        r.status(),
        404,
        "40 days after completion is past the 30-day window"
    );
    fake.abort();

    let entries = wait::until(
        "the doctor's read in the audit stream",
        Duration::from_secs(10),
        || async {
            let e = audit_entries(&clinic, &id(&related)).await;
            (!e.is_empty()).then_some(e)
        },
    )
    .await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["actor_id"], id(&doc_s).as_str());
    assert_eq!(entries[0]["actor_role"], "doctor");
    assert_eq!(entries[0]["reason"], "confirmed_appointment");
    assert!(
        audit_entries(&clinic, &id(&lapsed)).await.is_empty(),
        "refused reads are not recorded as reads"
    );
}

async fn a_doctor_with_no_care_relation_gets_not_found(b: Backend) {
    let clinic = Clinic::start(b).await;
    let p = patient_with_record(&clinic).await;
    let doctor = clinic.create_user(Role::Doctor, &unique_email("doc")).await;
    let doc_s = clinic
        .login(doctor["email"].as_str().unwrap(), PASSWORD)
        .await;
    let path = format!("/api/patients/{}/record", id(&p));
    let r = get(&clinic, &doc_s, &path).await;
    assert_eq!(r.status(), 404, "the admin service answers: no relation");
    assert_eq!(error_code(r).await, "not_found");
}

async fn a_doctor_with_a_confirmed_appointment_reads_the_record_and_the_read_is_audited(
    b: Backend,
) {
    let clinic = Clinic::start(b).await;
    let admin = admin(&clinic).await;
    let docs = doctors(&clinic, 2).await;
    let (doc, stranger) = (&docs[0], &docs[1]);
    let s = patient_with_record(&clinic).await;
    let pat = signed_in(&clinic, &s).await;
    let w = window_in(2);
    let appointment = pat.requested(json!({"doctor": doc.id}), &w).await;
    wait_offered(doc, &appointment).await;
    let r = doc
        .post(
            &format!("/api/appointments/{appointment}/accept"),
            &json!({"start": w.start}),
        )
        .await;
    assert_eq!(r.status(), 200, "accept: {}", r.text().await.unwrap());
    assert!(
        audit_entries(&clinic, &pat.id).await.is_empty(),
        "nobody has read the record yet"
    );

    let path = format!("/api/patients/{}/record", pat.id);
    let r = doc.get(&path).await;
    assert_eq!(
        r.status(),
        200,
        "the doctor of a confirmed appointment reads it"
    );
    let record: Value = r.json().await.unwrap();
    assert_eq!(record["patient_id"], pat.id.as_str());
    assert_eq!(record["blood_type"], "AB-");

    let r = stranger.get(&path).await;
    assert_eq!(r.status(), 404, "a doctor with no care relation");
    assert_eq!(error_code(r).await, "not_found");

    let entries = wait::until(
        "the doctor's read in the audit stream",
        DEADLINE,
        || async {
            let e = audit_entries(&clinic, &pat.id).await;
            (!e.is_empty()).then_some(e)
        },
    )
    .await;
    assert_eq!(entries.len(), 1, "one read, one entry: {entries:?}");
    let e = &entries[0];
    assert_eq!(e["actor_id"], doc.id.as_str());
    assert_eq!(e["actor_role"], "doctor");
    assert_eq!(e["action"], "medical_record.read");
    assert_eq!(e["reason"], "confirmed_appointment");

    let query = format!("/api/admin/audit?subject_id={}&actor_id={}", pat.id, doc.id);
    let listed = wait::until("the read in the admin's audit list", DEADLINE, || async {
        let page = admin.json(&query).await;
        let reads: Vec<Value> = page["entries"]
            .as_array()?
            .iter()
            .filter(|e| e["action"] == "medical_record.read")
            .cloned()
            .collect();
        (!reads.is_empty()).then_some(reads)
    })
    .await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["actor_role"], "doctor");
    assert_eq!(listed[0]["reason"], "confirmed_appointment");
    let page = admin
        .json(&format!(
            "/api/admin/audit?subject_id={}&actor_id={}",
            pat.id, stranger.id
        ))
        .await;
    assert_eq!(page["entries"], json!([]), "a refused read is not a read");

    // The profile, with the insurance on it, follows the same rule and is audited as its own
    // kind of read.
    let r = put(
        &clinic,
        &s,
        "/api/patients/me/profile",
        Some("*"),
        &json!({"date_of_birth": "1980-02-29", "insurance": [a_policy("primary")]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let path = format!("/api/patients/{}/profile", pat.id);
    let r = doc.get(&path).await;
    assert_eq!(r.status(), 200, "the doctor of a confirmed appointment");
    let profile: Value = r.json().await.unwrap();
    assert_eq!(profile["date_of_birth"], "1980-02-29");
    assert_eq!(profile["insurance"][0]["member_id"], "NWH-0042 7781");
    let r = stranger.get(&path).await;
    assert_eq!(r.status(), 404, "a doctor with no care relation");
    let reads = wait::until("the profile read in the audit stream", DEADLINE, || async {
        let e = audit_entries(&clinic, &pat.id).await;
        let reads: Vec<Value> = e
            .into_iter()
            .filter(|e| e["action"] == "patient_profile.read")
            .collect();
        (!reads.is_empty()).then_some(reads)
    })
    .await;
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(reads[0]["actor_id"], doc.id.as_str());
    assert_eq!(reads[0]["reason"], "confirmed_appointment");
}
