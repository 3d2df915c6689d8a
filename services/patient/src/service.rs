//! The patient operations and their NATS endpoints. Each endpoint decodes, calls one method of
//! [`PatientService`], and encodes; the methods hold the access rules:
//!
//! - a patient reads and edits only their own profile and record (created empty on first
//!   access);
//! - an active admin may read any patient's record, never edit it;
//! - an active doctor may read a patient's record while the admin service reports a care
//!   relation ([`crate::domain::doctor_access`]); if that cannot be asked, the read fails with
//!   the transport error (503/504) and is never allowed;
//! - anyone else learns nothing: `not_found`.
//!
//! Every read of someone else's record is an append-only audit entry, stored and published
//! (outbox) in the same transaction as the read.

use crate::config::PatientConfig;
use crate::domain::{self, Profile, Record};
use crate::store::{self, Part, PatientRow, ProfileCols, RecordCols, Update};
use crate::{MIGRATOR, SPEC};
use anyhow::Context as _;
use carehub_bus::Bus;
use carehub_nats::appointment::CareRelation;
use carehub_nats::audit::AuditEntry;
use carehub_nats::patient::*;
use carehub_nats::time::rfc3339_auto;
use carehub_nats::{CallContext, ErrorCode, Principal, Role, UserStatus, WireError};
use carehub_runtime::db::{Db, now_ms};
use carehub_runtime::outbox::{Pending, Relay};
use carehub_runtime::service::Running;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// The audit action of a read of someone else's medical record.
pub(crate) const RECORD_READ: &str = "medical_record.read";
/// The audit action of a read of someone else's profile.
pub(crate) const PROFILE_READ: &str = "patient_profile.read";

/// The patient service's shared state. Cheap to clone.
#[derive(Clone)]
pub(crate) struct PatientService {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    bus: Bus,
    relay: Relay,
    cfg: PatientConfig,
}

/// Migrates the database, makes sure the streams it reads and writes exist, and serves every
/// patient endpoint, the outbox relay and the account event consumer.
///
/// # Errors
/// When migrations fail, JetStream is unavailable, or NATS refuses the subscriptions.
pub async fn start(cfg: PatientConfig, bus: Bus, db: Db) -> anyhow::Result<Running> {
    db.migrate(&MIGRATOR).await.context("patient migrations")?;
    let js = carehub_bus::streams::ensure(
        &bus,
        &[carehub_nats::streams::USERS, carehub_nats::streams::AUDIT],
        &cfg.streams,
    )
    .await
    .context("creating the account and audit streams")?;
    let relay = Relay::new(SPEC.name, db.clone(), js.clone()).with_options(cfg.relay);
    let running = Running::new(SPEC.name);
    let relay_task = relay.clone().spawn(running.stop_token());
    running.spawn(async move {
        let _ = relay_task.await;
    });
    let reconcile = carehub_runtime::reconcile::Trigger::default();
    running.spawn(crate::accounts::run(
        db.clone(),
        js,
        cfg.relay.check_every,
        reconcile.clone(),
        running.stop_token(),
    ));
    running.spawn(crate::accounts::reconcile(
        bus.clone(),
        db.clone(),
        cfg.relay.copies_every,
        reconcile,
        running.stop_token(),
    ));
    let max_in_flight = cfg.max_in_flight;
    let svc = PatientService {
        inner: Arc::new(Inner {
            db,
            bus: bus.clone(),
            relay,
            cfg,
        }),
    };
    let micro = carehub_bus::serve!(&bus, SPEC, max_in_flight, svc,
        GetMyProfile => get_profile,
        UpdateMyProfile => update_profile,
        GetMyRecord => get_record,
        UpdateMyRecord => update_record,
        ReadRecord => read_record,
        ReadProfile => read_profile,
    );
    Ok(running.serving(micro))
}

/// The caller, who must be an active patient.
fn patient(ctx: &CallContext) -> Result<&Principal, WireError> {
    let p = ctx.caller()?;
    if p.role != Role::Patient || p.status != UserStatus::Active {
        return Err(WireError::forbidden("patients only"));
    }
    Ok(p)
}

fn not_found() -> WireError {
    WireError::not_found("no such patient record")
}

fn corrupt(id: &str, what: &str, e: &dyn std::fmt::Display) -> WireError {
    tracing::error!(error = %e, patient_id = %id, column = what, "corrupt patient row");
    WireError::internal()
}

fn decode<T: DeserializeOwned>(id: &str, what: &str, json: &str) -> Result<T, WireError> {
    serde_json::from_str(json).map_err(|e| corrupt(id, what, &e))
}

fn encode<T: Serialize>(value: &T) -> Result<String, WireError> {
    serde_json::to_string(value).map_err(|e| {
        tracing::error!(error = %e, "encoding a patient column");
        WireError::internal()
    })
}

fn to_profile(row: &PatientRow) -> Result<PatientProfile, WireError> {
    let id = row.id.as_str();
    Ok(PatientProfile {
        patient_id: row.id.clone(),
        display_name: row.display_name.clone(),
        fields: ProfileFields {
            date_of_birth: row.date_of_birth.clone(),
            phone: row.phone.clone(),
            address: row
                .address
                .as_deref()
                .map(|a| decode(id, "address", a))
                .transpose()?,
            emergency_contact: row
                .emergency_contact
                .as_deref()
                .map(|c| decode(id, "emergency_contact", c))
                .transpose()?,
            insurance: row
                .insurance
                .as_deref()
                .map(|i| decode(id, "insurance", i))
                .transpose()?
                .unwrap_or_default(),
        },
        version: row.profile_version,
        updated_at: rfc3339_auto(row.profile_updated_at),
    })
}

fn to_record(row: &PatientRow) -> Result<MedicalRecord, WireError> {
    let id = row.id.as_str();
    Ok(MedicalRecord {
        patient_id: row.id.clone(),
        fields: RecordFields {
            allergies: decode(id, "allergies", &row.allergies)?,
            conditions: decode(id, "conditions", &row.conditions)?,
            medications: decode(id, "medications", &row.medications)?,
            blood_type: BloodType::parse(&row.blood_type)
                .map_err(|e| corrupt(id, "blood_type", &e))?,
            notes: row.notes.clone(),
        },
        version: row.record_version,
        updated_at: rfc3339_auto(row.record_updated_at),
    })
}

fn stale(what: &str, current: i64) -> WireError {
    WireError::new(
        ErrorCode::PreconditionFailed,
        format!(
            "the {what} was changed since you read it (it is at version {current}); reload and try again"
        ),
    )
}

impl PatientService {
    fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The caller's row, created empty on their first access. A read is one statement once the
    /// row exists (every read but the first), the insert only runs when it does not.
    async fn own_row(&self, p: &Principal) -> Result<PatientRow, WireError> {
        if let Some(row) = store::patient(self.db(), &p.user_id).await? {
            return Ok(row);
        }
        store::ensure_patient(self.db(), &p.user_id, now_ms()).await?;
        store::patient(self.db(), &p.user_id)
            .await?
            .ok_or_else(WireError::internal)
    }

    /// Replaces one part of the caller's row (created empty first if need be) if that part is
    /// still at `expected_version`: the row after the change, or `precondition_failed`.
    async fn replace(
        &self,
        p: &Principal,
        expected_version: Option<i64>,
        part: Part<'_>,
    ) -> Result<PatientRow, WireError> {
        let (what, version): (&str, fn(&PatientRow) -> i64) = match part {
            Part::Profile(_) => ("profile", |row| row.profile_version),
            Part::Record(_) => ("medical record", |row| row.record_version),
        };
        store::ensure_patient(self.db(), &p.user_id, now_ms()).await?;
        match store::update(self.db(), &p.user_id, expected_version, part, now_ms()).await? {
            Update::Done(row) => {
                tracing::info!(patient_id = %p.user_id, version = version(&row), "{what} updated");
                Ok(row)
            }
            Update::Stale(row) => Err(stale(what, version(&row))),
        }
    }

    /// The caller's own profile.
    ///
    /// # Errors
    /// `unauthorized` without a principal, `forbidden` for anyone but an active patient.
    pub(crate) async fn get_profile(
        &self,
        ctx: &CallContext,
        _: GetMyProfile,
    ) -> Result<PatientProfile, WireError> {
        let p = patient(ctx)?;
        to_profile(&self.own_row(p).await?)
    }

    /// Replaces the caller's profile if it is still at the expected version.
    ///
    /// # Errors
    /// `validation_failed` for bad input, `precondition_failed` for a stale version (nothing changes),
    /// `forbidden` for anyone but an active patient.
    pub(crate) async fn update_profile(
        &self,
        ctx: &CallContext,
        r: UpdateMyProfile,
    ) -> Result<PatientProfile, WireError> {
        let p = patient(ctx)?;
        let profile = Profile::parse(r.fields, domain::today())?;
        let f = profile.fields();
        let cols = ProfileCols {
            date_of_birth: f.date_of_birth.clone(),
            phone: f.phone.clone(),
            address: f.address.as_ref().map(encode).transpose()?,
            emergency_contact: f.emergency_contact.as_ref().map(encode).transpose()?,
            insurance: (!f.insurance.is_empty())
                .then(|| encode(&f.insurance))
                .transpose()?,
        };
        to_profile(
            &self
                .replace(p, r.expected_version, Part::Profile(&cols))
                .await?,
        )
    }

    /// The caller's own medical record.
    ///
    /// # Errors
    /// `unauthorized` without a principal, `forbidden` for anyone but an active patient.
    pub(crate) async fn get_record(
        &self,
        ctx: &CallContext,
        _: GetMyRecord,
    ) -> Result<MedicalRecord, WireError> {
        let p = patient(ctx)?;
        to_record(&self.own_row(p).await?)
    }

    /// Replaces the caller's medical record if it is still at the expected version.
    ///
    /// # Errors
    /// `validation_failed` for bad input, `precondition_failed` for a stale version (nothing changes),
    /// `forbidden` for anyone but an active patient.
    pub(crate) async fn update_record(
        &self,
        ctx: &CallContext,
        r: UpdateMyRecord,
    ) -> Result<MedicalRecord, WireError> {
        let p = patient(ctx)?;
        let record = Record::parse(&r.fields, domain::today())?;
        let f = record.fields();
        let cols = RecordCols {
            allergies: encode(&f.allergies)?,
            conditions: encode(&f.conditions)?,
            medications: encode(&f.medications)?,
            blood_type: f.blood_type.as_str(),
            notes: f.notes.clone(),
        };
        to_record(
            &self
                .replace(p, r.expected_version, Part::Record(&cols))
                .await?,
        )
    }

    /// Why the caller may read `patient_id`'s record (the audit reason), or `not_found`.
    async fn read_reason(
        &self,
        ctx: &CallContext,
        p: &Principal,
        patient_id: &str,
    ) -> Result<&'static str, WireError> {
        if p.status != UserStatus::Active {
            return Err(not_found());
        }
        match p.role {
            Role::Admin => Ok("admin"),
            Role::Doctor => {
                // Ask about a relation only for a patient that exists here.
                if !store::patient_exists(self.db(), patient_id).await? {
                    return Err(not_found());
                }
                let question = CareRelation {
                    doctor_id: p.user_id.clone(),
                    patient_id: patient_id.to_owned(),
                };
                let relation = self.inner.bus.request(ctx, &question).await.map_err(|e| {
                    tracing::warn!(error = %e, "care relation unavailable; doctor read refused");
                    e.to_wire()
                })?;
                domain::doctor_access(&relation, now_ms(), self.inner.cfg.record_access_days)
                    .ok_or_else(not_found)
            }
            Role::Patient => Err(not_found()),
        }
    }

    /// One patient's record: their own, or someone else's for an admin or a doctor with a
    /// current care relation (audited).
    ///
    /// # Errors
    /// `not_found` for an unknown patient or a caller without access, `service_unavailable` or
    /// `timeout` when a doctor's relation cannot be checked.
    pub(crate) async fn read_record(
        &self,
        ctx: &CallContext,
        r: ReadRecord,
    ) -> Result<MedicalRecord, WireError> {
        let p = ctx.caller()?;
        if p.role == Role::Patient && p.user_id == r.patient_id {
            return self.get_record(ctx, GetMyRecord {}).await;
        }
        to_record(&self.read_for(ctx, p, &r.patient_id, RECORD_READ).await?)
    }

    /// One patient's profile (contact details, insurance), under the rule of
    /// [`Self::read_record`], audited the same way.
    ///
    /// # Errors
    /// As [`Self::read_record`].
    pub(crate) async fn read_profile(
        &self,
        ctx: &CallContext,
        r: ReadProfile,
    ) -> Result<PatientProfile, WireError> {
        let p = ctx.caller()?;
        if p.role == Role::Patient && p.user_id == r.patient_id {
            return self.get_profile(ctx, GetMyProfile {}).await;
        }
        to_profile(&self.read_for(ctx, p, &r.patient_id, PROFILE_READ).await?)
    }

    /// Someone else's row, read for `p` when the access rule allows it, with the read
    /// (`action`) in the audit log and the outbox in the same transaction.
    async fn read_for(
        &self,
        ctx: &CallContext,
        p: &Principal,
        patient_id: &str,
        action: &str,
    ) -> Result<PatientRow, WireError> {
        let reason = self.read_reason(ctx, p, patient_id).await?;
        let event_id = uuid::Uuid::now_v7().to_string();
        let entry = AuditEntry {
            event_id: event_id.clone(),
            at: now_ms(),
            service: SPEC.name.to_owned(),
            actor_id: p.user_id.clone(),
            actor_role: p.role.as_str().to_owned(),
            subject_id: Some(patient_id.to_owned()),
            action: action.to_owned(),
            reason: Some(reason.to_owned()),
            actor_name: None,
            subject_name: None,
        };
        let pending = Pending::new(&carehub_nats::audit::subject(SPEC.name), &event_id, &entry)?;
        let row = store::read_audited(self.db(), &entry, &pending)
            .await?
            .ok_or_else(not_found)?;
        self.inner.relay.wake();
        tracing::info!(patient_id, actor_id = %p.user_id, reason, action, "patient data read");
        Ok(row)
    }
}
