//! The doctor operations and their NATS endpoints. Each endpoint decodes, calls one method of
//! [`DoctorService`], and encodes; the methods hold the rules.
//!
//! Who may do what: the directory, public profiles and free slots are for any signed-in user;
//! a doctor reads their own profile and availability, and changes them while their account is
//! active; an admin may read any doctor's profile and availability by id. Someone else's
//! doctor data is `not_found`, never `forbidden`.
//!
//! Time off is accepted without looking at appointments: refusing time off that overlaps a
//! confirmed appointment (409) is the admin service's rule, since it owns appointments.

use crate::config::DoctorConfig;
use crate::domain;
use crate::store::{self, Change, ChangeError, DirectoryFilter, Doctor, DoctorRow};
use crate::{MIGRATOR, SPEC};
use anyhow::Context as _;
use carehub_bus::Bus;
use carehub_nats::appointment::{ApplyDoctor, TakenTimes};
use carehub_nats::doctor::*;
use carehub_nats::sync::{DoctorVersions, Doctors, GetDoctors, Versions, check_batch, page_limit};
use carehub_nats::time::{rfc3339, rfc3339_of};
use carehub_nats::{CallContext, Principal, Role, UserStatus, WireError};
use carehub_runtime::db::{Db, StoreError, like_contains, next_page, now_ms};
use carehub_runtime::outbox::{Pending, Relay};
use carehub_runtime::service::Running;
use carehub_schedule::ScheduleError;
use chrono::DateTime;
use std::sync::Arc;

/// The doctor service's shared state. Cheap to clone.
#[derive(Clone)]
pub(crate) struct DoctorService {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    relay: Relay,
    /// To ask the admin service about confirmed appointments before adding time off.
    bus: Bus,
}

/// Migrates the database, starts the outbox relay and the account consumer, and serves every
/// doctor endpoint.
///
/// # Errors
/// When migrations fail, JetStream is unavailable, or NATS refuses the subscriptions.
pub async fn start(cfg: DoctorConfig, bus: Bus, db: Db) -> anyhow::Result<Running> {
    db.migrate(&MIGRATOR).await.context("doctor migrations")?;
    let js = carehub_bus::streams::ensure(
        &bus,
        &[carehub_nats::streams::USERS, carehub_nats::streams::DOCTORS],
        &cfg.streams,
    )
    .await
    .context("creating the account and doctor event streams")?;
    let relay = Relay::new(SPEC.name, db.clone(), js.clone()).with_options(cfg.relay);
    let running = Running::new(SPEC.name);
    let relay_task = relay.clone().spawn(running.stop_token());
    let svc = DoctorService {
        inner: Arc::new(Inner {
            db,
            relay,
            bus: bus.clone(),
        }),
    };
    let reconcile = carehub_runtime::reconcile::Trigger::default();
    running.spawn(crate::accounts::consume(
        svc.clone(),
        js,
        cfg.consumer.clone(),
        cfg.relay.check_every,
        reconcile.clone(),
        running.stop_token(),
    ));
    running.spawn(crate::accounts::reconcile(
        svc.clone(),
        bus.clone(),
        cfg.relay.copies_every,
        reconcile,
        running.stop_token(),
    ));
    let micro = carehub_bus::serve!(&bus, SPEC, cfg.max_in_flight, svc,
        SearchDoctors => search,
        GetPublicProfile => public_profile,
        FreeSlots => free_slots,
        GetProfile => profile,
        UpdateProfile => update_profile,
        GetAvailability => availability,
        ReplaceAvailability => replace_availability,
        AddTimeOff => add_time_off,
        RemoveTimeOff => remove_time_off,
        DoctorVersions => versions,
        GetDoctors => snapshots,
    );
    running.spawn(async move {
        let _ = relay_task.await;
    });
    Ok(running.serving(micro))
}

fn no_doctor() -> WireError {
    WireError::not_found("doctor not found")
}

fn corrupt(id: &str, what: &str) -> WireError {
    tracing::error!(doctor_id = %id, what, "corrupt doctor row");
    WireError::internal()
}

fn specialties_of(row: &DoctorRow) -> Result<Vec<String>, WireError> {
    serde_json::from_str(&row.specialties).map_err(|_| corrupt(&row.id, "specialties"))
}

fn languages_of(row: &DoctorRow) -> Result<Vec<String>, WireError> {
    serde_json::from_str(&row.languages).map_err(|_| corrupt(&row.id, "languages"))
}

fn summary_of(row: &DoctorRow) -> Result<DoctorSummary, WireError> {
    Ok(DoctorSummary {
        id: row.id.clone(),
        display_name: row.display_name.clone(),
        specialties: specialties_of(row)?,
        languages: languages_of(row)?,
    })
}

fn weekly_of(row: &DoctorRow) -> Result<Vec<WeeklyHours>, WireError> {
    serde_json::from_str(&row.weekly).map_err(|_| corrupt(&row.id, "weekly"))
}

fn slot_minutes_of(row: &DoctorRow) -> u32 {
    u32::try_from(row.slot_minutes).unwrap_or(30)
}

fn approved(row: &DoctorRow) -> bool {
    row.account_status == UserStatus::Active.as_str()
}

fn time_off_wire(d: &Doctor) -> Vec<TimeOff> {
    d.time_off
        .iter()
        .map(|t| TimeOff {
            id: t.id.clone(),
            start: rfc3339(t.start_at),
            end: rfc3339(t.end_at),
            reason: t.reason.clone(),
        })
        .collect()
}

fn profile_view(row: &DoctorRow) -> Result<DoctorProfile, WireError> {
    Ok(DoctorProfile {
        summary: summary_of(row)?,
        bio: row.bio.clone(),
        approved: approved(row),
        version: row.version,
    })
}

fn availability_of(d: &Doctor) -> Result<Availability, WireError> {
    Ok(Availability {
        time_zone: d.row.time_zone.clone(),
        weekly: weekly_of(&d.row)?,
        slot_minutes: slot_minutes_of(&d.row),
        auto_accept: d.row.auto_accept,
        time_off: time_off_wire(d),
    })
}

fn availability_view(d: &Doctor) -> Result<AvailabilityView, WireError> {
    Ok(AvailabilityView {
        doctor_id: d.row.id.clone(),
        availability: availability_of(d)?,
        version: d.row.version,
    })
}

/// The event describing `d` as it is now.
///
/// # Errors
/// When a stored field does not decode, or the event does not encode.
pub(crate) fn event(kind: DoctorEventKind, d: &Doctor) -> Result<Pending, StoreError> {
    let event = snapshot_event(kind, d)?;
    Pending::new(&kind.subject(), &event.event_id, &event)
}

/// The event describing `d` as it is now, with a new id.
///
/// # Errors
/// When a stored field does not decode.
fn snapshot_event(kind: DoctorEventKind, d: &Doctor) -> Result<DoctorEvent, StoreError> {
    Ok(DoctorEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        kind,
        at: now_ms(),
        doctor: snapshot(d).map_err(|e| StoreError::Conflict(e.message))?,
    })
}

/// What other services know of `d`, as of its version.
///
/// # Errors
/// When a stored field does not decode.
fn snapshot(d: &Doctor) -> Result<DoctorSnapshot, WireError> {
    Ok(DoctorSnapshot {
        id: d.row.id.clone(),
        display_name: d.row.display_name.clone(),
        specialties: specialties_of(&d.row)?,
        approved: approved(&d.row),
        availability: availability_of(d)?,
        version: d.row.version,
    })
}

fn change_error(e: ChangeError) -> WireError {
    match e {
        ChangeError::NoDoctor => no_doctor(),
        ChangeError::VersionMismatch { current } => WireError::conflict(format!(
            "expected_version: the doctor is at version {current}; reload and try again"
        )),
        ChangeError::NoTimeOff => WireError::not_found("time off not found"),
        ChangeError::TooManyTimeOff => WireError::conflict(format!(
            "at most {} upcoming time off periods; remove one first",
            domain::MAX_UPCOMING_TIME_OFF
        )),
        ChangeError::Store(e) => e.into(),
    }
}

impl DoctorService {
    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Applies `change` to the doctor `id` if it is still at `expected_version` (any version when
    /// `None`), with its event in the same transaction; wakes the relay and logs `what`.
    async fn change(
        &self,
        ctx: &CallContext,
        id: &str,
        expected_version: Option<i64>,
        change: &Change<'_>,
        what: &str,
    ) -> Result<Doctor, WireError> {
        let kind = match change {
            Change::Profile { .. } => DoctorEventKind::ProfileChanged,
            Change::Availability { .. }
            | Change::AddTimeOff { .. }
            | Change::RemoveTimeOff { .. } => DoctorEventKind::AvailabilityChanged,
        };
        let d = store::change(self.db(), id, expected_version, change, now_ms(), |d| {
            event(kind, d)
        })
        .await
        .map_err(change_error)?;
        self.inner.relay.wake();
        tracing::info!(doctor_id = %id, version = d.row.version, "{what}");
        self.hand_over(ctx, kind, &d).await;
        Ok(d)
    }

    /// Hands the doctor's new state to the admin service before the change is answered, so a
    /// slot query or booking sent after the answer sees it through any instance. Should that
    /// fail, the admin service still gets the same state from the `CAREHUB_DOCTORS` stream.
    async fn hand_over(&self, ctx: &CallContext, kind: DoctorEventKind, d: &Doctor) {
        let event = match snapshot_event(kind, d) {
            Ok(event) => event,
            Err(e) => {
                tracing::error!(doctor_id = %d.row.id, error = %e, "doctor snapshot");
                return;
            }
        };
        if let Err(e) = self.inner.bus.request(ctx, &ApplyDoctor { event }).await {
            tracing::warn!(doctor_id = %d.row.id, version = d.row.version, error = %e,
                "the admin service did not take the doctor's new state; it follows from the stream");
        }
    }

    /// A page of doctor versions for the admin service's copy ([`carehub_nats::sync`]; NATS
    /// permissions decide who may ask).
    ///
    /// # Errors
    /// On storage failure.
    pub(crate) async fn versions(
        &self,
        _ctx: &CallContext,
        r: DoctorVersions,
    ) -> Result<Versions, WireError> {
        let rows = store::doctor_versions(
            self.db(),
            r.after.as_deref().unwrap_or(""),
            i64::from(page_limit(r.limit)),
        )
        .await?;
        Ok(Versions::from(rows))
    }

    /// The current snapshots of up to a page of doctors, for a copy that missed their events.
    ///
    /// # Errors
    /// `validation_failed` for more than a page of ids; on storage failure.
    pub(crate) async fn snapshots(
        &self,
        _ctx: &CallContext,
        r: GetDoctors,
    ) -> Result<Doctors, WireError> {
        check_batch(&r.ids)?;
        let doctors = store::doctors_with_time_off(self.db(), &r.ids, now_ms()).await?;
        Ok(Doctors {
            doctors: doctors.iter().map(snapshot).collect::<Result<_, _>>()?,
        })
    }

    /// Applies account facts from the account stream (see [`crate::accounts`]).
    ///
    /// # Errors
    /// On storage failure; the event is then retried.
    pub(crate) async fn apply_account(
        &self,
        e: &carehub_nats::auth::UserEvent,
    ) -> Result<bool, StoreError> {
        let account = &e.user;
        let changed = store::apply_account(self.db(), e, now_ms(), |d| {
            event(DoctorEventKind::ProfileChanged, d)
        })
        .await?;
        if changed {
            self.inner.relay.wake();
            tracing::info!(doctor_id = %account.id, status = account.status.as_str(), "doctor account applied");
        }
        Ok(changed)
    }

    /// The caller, who must be a doctor (any status). Reads are allowed while pending.
    fn doctor_reader<'c>(&self, ctx: &'c CallContext) -> Result<&'c Principal, WireError> {
        let p = ctx.caller()?;
        if p.role != Role::Doctor {
            return Err(WireError::forbidden("doctors only"));
        }
        Ok(p)
    }

    /// The caller, who must be an active doctor.
    fn doctor_writer<'c>(&self, ctx: &'c CallContext) -> Result<&'c Principal, WireError> {
        let p = self.doctor_reader(ctx)?;
        if p.status != UserStatus::Active {
            return Err(WireError::forbidden(
                "your account is not active yet; an administrator must approve it",
            ));
        }
        Ok(p)
    }

    /// Whose data a read concerns: the calling doctor, or the named doctor for an admin.
    fn reading_whom(&self, ctx: &CallContext, named: Option<String>) -> Result<String, WireError> {
        let p = ctx.caller()?;
        match (p.role, named) {
            (Role::Admin, Some(id)) if p.status == UserStatus::Active => Ok(id),
            (Role::Doctor, None) => Ok(p.user_id.clone()),
            (Role::Doctor, Some(id)) if id == p.user_id => Ok(id),
            // A doctor naming someone else sees nothing of them.
            (Role::Doctor, Some(_)) => Err(no_doctor()),
            _ => Err(WireError::forbidden("doctors and administrators only")),
        }
    }

    /// An approved doctor with the time off that ends after `time_off_after` (Unix ms).
    async fn approved_doctor(&self, id: &str, time_off_after: i64) -> Result<Doctor, WireError> {
        store::doctor_with_time_off(self.db(), id, time_off_after)
            .await?
            .filter(|d| approved(&d.row))
            .ok_or_else(no_doctor)
    }

    /// Approved doctors by specialty and name, ordered by id.
    ///
    /// # Errors
    /// `unauthorized` without a principal, `validation_failed` for a limit outside 1..=100 or
    /// a language outside the ISO 639-1 list.
    pub(crate) async fn search(
        &self,
        ctx: &CallContext,
        r: SearchDoctors,
    ) -> Result<DoctorPage, WireError> {
        ctx.caller()?;
        let limit = i64::from(r.limit.unwrap_or(20));
        if !(1..=100).contains(&limit) {
            return Err(WireError::validation("limit: must be between 1 and 100"));
        }
        // An unknown code is refused (the OpenAPI document lists the codes); a known one that
        // nobody speaks lists nobody.
        let language_pattern = match r.language.as_deref() {
            None => None,
            Some(code) if carehub_nats::doctor::is_language_code(code) => {
                Some(format!("%\"{code}\"%"))
            }
            Some(_) => {
                return Err(WireError::validation(
                    "language: not an ISO 639-1 code (two lowercase letters, e.g. 'de')",
                ));
            }
        };
        let specialty = r
            .specialty
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let specialty_pattern = match specialty {
            // A specialty no slug can match lists nobody.
            Some(s) => match domain::slug(s) {
                Some(slug) => Some(format!("%\"{slug}\"%")),
                None => {
                    return Ok(DoctorPage {
                        doctors: vec![],
                        next_cursor: None,
                    });
                }
            },
            None => None,
        };
        let name_pattern =
            r.q.as_deref()
                .map(str::trim)
                .filter(|q| !q.is_empty())
                .map(like_contains);
        let filter = DirectoryFilter {
            specialty_pattern,
            language_pattern,
            name_pattern,
            after_id: r.cursor.as_deref().filter(|c| !c.is_empty()),
            limit: limit + 1,
        };
        let mut rows = store::directory(self.db(), &filter).await?;
        let next_cursor = next_page(&mut rows, limit, |d| d.id.clone());
        let doctors = rows.iter().map(summary_of).collect::<Result<_, _>>()?;
        Ok(DoctorPage {
            doctors,
            next_cursor,
        })
    }

    /// An approved doctor's public profile.
    ///
    /// # Errors
    /// `unauthorized`, `not_found` (also for doctors not approved).
    pub(crate) async fn public_profile(
        &self,
        ctx: &CallContext,
        r: GetPublicProfile,
    ) -> Result<PublicProfile, WireError> {
        ctx.caller()?;
        let d = self.approved_doctor(&r.doctor_id, now_ms()).await?;
        Ok(PublicProfile {
            summary: summary_of(&d.row)?,
            bio: d.row.bio.clone(),
            time_zone: d.row.time_zone.clone(),
            slot_minutes: slot_minutes_of(&d.row),
            auto_accept: d.row.auto_accept,
        })
    }

    /// Free slots of an approved doctor: working hours minus time off minus what the admin
    /// service holds as taken (confirmed appointments, the doctor's proposed new times, and,
    /// for a patient, their own confirmed appointments). Both reads are of committed data, so
    /// a query sent after any change was answered sees it, through any instance.
    ///
    /// # Errors
    /// `unauthorized`, `not_found`, `validation_failed` for a bad, reversed or too long window;
    /// `service_unavailable` / `timeout` when the admin service cannot answer.
    pub(crate) async fn free_slots(
        &self,
        ctx: &CallContext,
        r: FreeSlots,
    ) -> Result<SlotList, WireError> {
        let caller = ctx.caller()?;
        let from = domain::instant("from", &r.from)?;
        let to = domain::instant("to", &r.to)?;
        // A bad window is refused before asking anyone.
        if to <= from {
            return Err(domain::schedule_error(&ScheduleError::EmptyWindow));
        }
        if to - from > chrono::Duration::days(carehub_schedule::MAX_WINDOW_DAYS) {
            return Err(domain::schedule_error(&ScheduleError::WindowTooLong));
        }
        // The doctor's hours (ours) and what is taken (the admin service's), read together.
        let ask = TakenTimes {
            doctor_id: r.doctor_id.clone(),
            from_ms: from.timestamp_millis(),
            to_ms: to.timestamp_millis(),
            patient_id: (caller.role == Role::Patient).then(|| caller.user_id.clone()),
        };
        let (d, taken) = tokio::join!(
            self.approved_doctor(&r.doctor_id, from.timestamp_millis()),
            self.inner.bus.request(ctx, &ask)
        );
        let d = d?;
        let taken = taken.map_err(|e| e.to_wire())?.taken;
        let time_off = d
            .time_off
            .iter()
            .filter_map(|t| {
                let s = DateTime::from_timestamp_millis(t.start_at)?;
                let e = DateTime::from_timestamp_millis(t.end_at)?;
                carehub_schedule::TimeOff::new(t.id.clone(), s, e, t.reason.clone()).ok()
            })
            .collect();
        let availability = domain::availability(
            &d.row.time_zone,
            &weekly_of(&d.row)?,
            time_off,
            slot_minutes_of(&d.row),
        )
        .map_err(|_| corrupt(&d.row.id, "availability"))?;
        let busy: Vec<_> = taken
            .iter()
            .filter_map(|&(s, e)| {
                Some((
                    DateTime::from_timestamp_millis(s)?,
                    DateTime::from_timestamp_millis(e)?,
                ))
            })
            .collect();
        let slots = availability
            .slots(from, to, &busy)
            .map_err(|e| domain::schedule_error(&e))?;
        Ok(SlotList {
            doctor_id: d.row.id.clone(),
            time_zone: d.row.time_zone.clone(),
            slot_minutes: slot_minutes_of(&d.row),
            slots: slots
                .iter()
                .map(|s| SlotView {
                    start: rfc3339_of(s.start),
                    end: rfc3339_of(s.end),
                })
                .collect(),
        })
    }

    /// The caller's profile (or, for an admin, the named doctor's).
    ///
    /// # Errors
    /// `unauthorized`, `forbidden` for other roles, `not_found`.
    pub(crate) async fn profile(
        &self,
        ctx: &CallContext,
        r: GetProfile,
    ) -> Result<DoctorProfile, WireError> {
        let id = self.reading_whom(ctx, r.doctor_id)?;
        let row = store::doctor(self.db(), &id).await?.ok_or_else(no_doctor)?;
        profile_view(&row)
    }

    /// Replaces the caller's specialties, bio and (when given) languages.
    ///
    /// # Errors
    /// `forbidden` unless an active doctor, `validation_failed`, `conflict` on a version
    /// mismatch, `not_found` before the account reached this service.
    pub(crate) async fn update_profile(
        &self,
        ctx: &CallContext,
        r: UpdateProfile,
    ) -> Result<DoctorProfile, WireError> {
        let p = self.doctor_writer(ctx)?;
        let specialties = domain::specialties(&r.specialties)?;
        let bio = domain::bio(&r.bio)?;
        let specialties_json =
            serde_json::to_string(&specialties).map_err(|_| WireError::internal())?;
        let languages_json = match &r.languages {
            Some(l) => Some(
                serde_json::to_string(&domain::languages(l)?).map_err(|_| WireError::internal())?,
            ),
            None => None,
        };
        let change = Change::Profile {
            specialties: &specialties_json,
            languages: languages_json.as_deref(),
            bio: &bio,
        };
        let d = self
            .change(
                ctx,
                &p.user_id,
                r.expected_version,
                &change,
                "profile updated",
            )
            .await?;
        profile_view(&d.row)
    }

    /// The caller's availability (or, for an admin, the named doctor's).
    ///
    /// # Errors
    /// `unauthorized`, `forbidden` for other roles, `not_found`.
    pub(crate) async fn availability(
        &self,
        ctx: &CallContext,
        r: GetAvailability,
    ) -> Result<AvailabilityView, WireError> {
        let id = self.reading_whom(ctx, r.doctor_id)?;
        let d = store::doctor_with_time_off(self.db(), &id, now_ms())
            .await?
            .ok_or_else(no_doctor)?;
        availability_view(&d)
    }

    /// Replaces the caller's weekly hours, zone, slot length and booking mode, if the doctor is
    /// still at `expected_version`.
    ///
    /// # Errors
    /// `forbidden` unless an active doctor, `validation_failed` (unknown zone, empty or
    /// overlapping ranges, slot length), `conflict` on a version mismatch, `not_found`.
    pub(crate) async fn replace_availability(
        &self,
        ctx: &CallContext,
        r: ReplaceAvailability,
    ) -> Result<AvailabilityView, WireError> {
        let p = self.doctor_writer(ctx)?;
        let checked = domain::availability(&r.time_zone, &r.weekly, vec![], r.slot_minutes)?;
        let weekly = serde_json::to_string(&domain::weekly_wire(checked.weekly()))
            .map_err(|_| WireError::internal())?;
        let change = Change::Availability {
            time_zone: checked.time_zone().name(),
            weekly: &weekly,
            slot_minutes: i64::from(checked.slot_minutes()),
            auto_accept: r.auto_accept,
        };
        let d = self
            .change(
                ctx,
                &p.user_id,
                Some(r.expected_version),
                &change,
                "availability replaced",
            )
            .await?;
        availability_view(&d)
    }

    /// Time off over confirmed appointments is refused with 409 `appointments_affected`
    /// listing them, unless forced: then the admin service cancels them first, telling each
    /// patient why.
    async fn clear_appointments(
        &self,
        ctx: &CallContext,
        p: &Principal,
        r: &AddTimeOff,
        reason: &str,
    ) -> Result<(), WireError> {
        let why = if reason.is_empty() {
            "the doctor is not available"
        } else {
            reason
        };
        let name = store::doctor(self.db(), &p.user_id)
            .await
            .ok()
            .flatten()
            .map(|d| d.display_name);
        let actor = carehub_nats::appointment::Actor {
            user_id: p.user_id.clone(),
            role: p.role,
            display_name: name,
        };
        carehub_runtime::absence::clear_for_absence(
            &self.inner.bus,
            ctx,
            &p.user_id,
            &r.start,
            Some(&r.end),
            r.force,
            why.to_owned(),
            actor,
            "the time off overlaps",
        )
        .await
    }

    /// Adds a time off period to the caller's availability.
    ///
    /// # Errors
    /// `forbidden` unless an active doctor, `validation_failed` for bad times (end not after
    /// start, longer than a year) or reason, `appointments_affected` over confirmed
    /// appointments without `force`, `conflict` on a version mismatch or when 200 periods are
    /// already upcoming.
    pub(crate) async fn add_time_off(
        &self,
        ctx: &CallContext,
        r: AddTimeOff,
    ) -> Result<TimeOffAdded, WireError> {
        let p = self.doctor_writer(ctx)?;
        let start = domain::instant("start", &r.start)?;
        let end = domain::instant("end", &r.end)?;
        let off = carehub_schedule::TimeOff::new(uuid::Uuid::now_v7().to_string(), start, end, "")
            .map_err(|_| WireError::validation("end: must be after start"))?;
        if end - start > chrono::Duration::days(domain::MAX_TIME_OFF_DAYS) {
            return Err(WireError::validation(format!(
                "end: a time off period spans at most {} days",
                domain::MAX_TIME_OFF_DAYS
            )));
        }
        let reason = domain::reason(&r.reason)?;
        self.clear_appointments(ctx, p, &r, &reason).await?;
        let change = Change::AddTimeOff {
            id: &off.id,
            start_at: off.start.timestamp_millis(),
            end_at: off.end.timestamp_millis(),
            reason: &reason,
            max_upcoming: i64::try_from(domain::MAX_UPCOMING_TIME_OFF).unwrap_or(i64::MAX),
        };
        let d = self
            .change(
                ctx,
                &p.user_id,
                r.expected_version,
                &change,
                "time off added",
            )
            .await?;
        Ok(TimeOffAdded {
            time_off: TimeOff {
                id: off.id.clone(),
                start: rfc3339_of(off.start),
                end: rfc3339_of(off.end),
                reason,
            },
            version: d.row.version,
        })
    }

    /// Removes one of the caller's time off periods.
    ///
    /// # Errors
    /// `forbidden` unless an active doctor, `not_found` for a period that is not theirs,
    /// `conflict` on a version mismatch.
    pub(crate) async fn remove_time_off(
        &self,
        ctx: &CallContext,
        r: RemoveTimeOff,
    ) -> Result<Versioned, WireError> {
        let p = self.doctor_writer(ctx)?;
        let change = Change::RemoveTimeOff { id: &r.time_off_id };
        let d = self
            .change(
                ctx,
                &p.user_id,
                r.expected_version,
                &change,
                "time off removed",
            )
            .await?;
        Ok(Versioned {
            version: d.row.version,
        })
    }
}
