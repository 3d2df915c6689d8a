//! The notify operations, their NATS endpoints and the background tasks: the account and
//! appointment event consumers, the password reset subscriber, the mail sender and the reminder
//! clock. Endpoints decode, call one method of [`NotifyService`], and encode.

use crate::config::NotifyConfig;
use crate::domain::{self, Message, Person, ReminderEffect, Wording};
use crate::mail::{Mailer, SendError};
use crate::store::{self, Delivery, NewMail, NewReminder, NotificationRow, ReminderChange};
use crate::{MIGRATOR, SPEC};
use anyhow::Context as _;
use carehub_bus::Bus;
use carehub_nats::appointment::AppointmentEvent;
use carehub_nats::auth::subject as auth_subject;
use carehub_nats::auth::{PasswordResetIssued, UserEvent};
use carehub_nats::notify::*;
use carehub_nats::{CallContext, Role, WireError};
use carehub_runtime::consumer::Durable;
use carehub_runtime::db::{Db, StoreError, next_page, now_ms};
use carehub_runtime::service::Running;
use futures::StreamExt as _;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The notify service's shared state. Cheap to clone.
#[derive(Clone)]
pub(crate) struct NotifyService {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    bus: Bus,
    cfg: NotifyConfig,
    mailer: Mailer,
    /// Rung when mail was queued, so the sender does not wait for its next poll.
    mail_queued: Notify,
    /// Names this instance's mail leases.
    instance: String,
}

/// Durable consumer names (one per stream, shared by every notify instance).
pub(crate) const USERS_CONSUMER: &str = "notify-service";
pub(crate) const APPOINTMENTS_CONSUMER: &str = "notify-appointments";

const MAIL_POLL: Duration = Duration::from_millis(500);
const REMINDER_POLL: Duration = Duration::from_secs(1);
const BATCH: i64 = 50;

/// Migrates the database, starts the consumers, the mail sender and the reminder clock, and
/// serves every notify endpoint.
///
/// # Errors
/// When migrations fail, the SMTP settings are unusable, or NATS refuses the streams or
/// subscriptions.
pub async fn start(cfg: NotifyConfig, bus: Bus, db: Db) -> anyhow::Result<Running> {
    db.migrate(&MIGRATOR).await.context("notify migrations")?;
    let mailer = Mailer::new(cfg.smtp.as_ref(), cfg.mail_dir.clone())?;
    let js = carehub_bus::streams::ensure(
        &bus,
        &[
            carehub_nats::streams::USERS,
            carehub_nats::streams::APPOINTMENTS,
        ],
        &cfg.streams,
    )
    .await
    .context("creating the event streams notify reads")?;
    let resets = bus
        .client()
        .queue_subscribe(
            auth_subject::PASSWORD_RESET,
            auth_subject::PASSWORD_RESET_QUEUE.into(),
        )
        .await
        .context("subscribing to password resets")?;
    let max_in_flight = cfg.max_in_flight;
    let check_every = cfg.check_every;
    let copies_every = cfg.copies_every;
    let svc = NotifyService {
        inner: Arc::new(Inner {
            db,
            bus: bus.clone(),
            cfg,
            mailer,
            mail_queued: Notify::new(),
            instance: uuid::Uuid::now_v7().to_string(),
        }),
    };
    let running = Running::new(SPEC.name);
    let stop = running.stop_token();
    let reconcile = carehub_runtime::reconcile::Trigger::default();
    let s = svc.clone();
    running.spawn(carehub_runtime::reconcile::run(
        SPEC.name,
        "accounts",
        carehub_runtime::reconcile::Accounts {
            bus: bus.clone(),
            db: svc.db().clone(),
            role: None,
            held: "SELECT id, account_version FROM users WHERE id IN (",
            apply: move |e: UserEvent| {
                let s = s.clone();
                async move { s.on_user_event(e).await }
            },
        },
        copies_every,
        reconcile.clone(),
        stop.clone(),
    ));
    let s = svc.clone();
    running.spawn(carehub_runtime::consumer::run(
        js.clone(),
        Durable::new(SPEC.name, carehub_nats::streams::USERS.name, USERS_CONSUMER)
            .positions(svc.db().clone(), check_every)
            .reconcile_after_reset(reconcile.clone()),
        stop.clone(),
        move |e: UserEvent| {
            let s = s.clone();
            async move { s.on_user_event(e).await }
        },
    ));
    let s = svc.clone();
    running.spawn(carehub_runtime::consumer::run(
        js,
        Durable::new(
            SPEC.name,
            carehub_nats::streams::APPOINTMENTS.name,
            APPOINTMENTS_CONSUMER,
        )
        .positions(svc.db().clone(), check_every),
        stop.clone(),
        move |e: AppointmentEvent| {
            let s = s.clone();
            async move { s.on_appointment_event(&e).await }
        },
    ));
    running.spawn(svc.clone().reset_subscriber(resets, stop.clone()));
    running.spawn(svc.clone().mail_sender(stop.clone()));
    running.spawn(svc.clone().reminder_clock(stop));

    let micro = carehub_bus::serve!(&bus, SPEC, max_in_flight, svc,
        ListNotifications => list,
        GetUnreadCount => unread_count,
        MarkRead => mark_read,
        MarkUnread => mark_unread,
        MarkAllRead => mark_all_read,
        DeleteNotification => delete,
    );
    Ok(running.serving(micro))
}

fn to_wire(row: NotificationRow) -> Notification {
    Notification {
        id: row.id,
        kind: row.kind,
        title: row.title,
        body: row.body,
        appointment_id: row.appointment_id,
        created_at: domain::rfc3339(row.created_at),
        read_at: row.read_at.map(domain::rfc3339),
    }
}

/// The zones of the people one event concerns.
struct Zones(HashMap<String, domain::Tz>);

impl Zones {
    fn of(&self, user: &str) -> domain::Tz {
        self.0.get(user).copied().unwrap_or(chrono_tz::UTC)
    }
}

fn not_found() -> WireError {
    WireError::not_found("notification not found")
}

fn person(row: &store::UserRow) -> Option<Person> {
    Some(Person {
        display_name: row.display_name.clone(),
        role: Role::parse(&row.role).ok()?,
    })
}

impl NotifyService {
    fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The caller's notifications, newest first.
    ///
    /// # Errors
    /// `unauthorized` without a principal, `validation_failed` for a limit outside 1..=100.
    pub(crate) async fn list(
        &self,
        ctx: &CallContext,
        r: ListNotifications,
    ) -> Result<NotificationPage, WireError> {
        let p = ctx.caller()?;
        let limit = i64::from(r.limit.unwrap_or(20));
        if !(1..=100).contains(&limit) {
            return Err(WireError::validation("limit: must be between 1 and 100"));
        }
        let cursor = r.cursor.as_deref().filter(|c| !c.is_empty());
        let mut rows = store::list(self.db(), &p.user_id, r.unread_only, cursor, limit + 1).await?;
        let next_cursor = next_page(&mut rows, limit, |n| n.id.clone());
        Ok(NotificationPage {
            notifications: rows.into_iter().map(to_wire).collect(),
            next_cursor,
        })
    }

    /// # Errors
    /// `unauthorized` without a principal.
    pub(crate) async fn unread_count(
        &self,
        ctx: &CallContext,
        _: GetUnreadCount,
    ) -> Result<UnreadCount, WireError> {
        let p = ctx.caller()?;
        Ok(UnreadCount {
            unread: store::unread_count(self.db(), &p.user_id).await?,
        })
    }

    /// # Errors
    /// `unauthorized`, or `not_found` unless the caller owns the notification.
    pub(crate) async fn mark_read(
        &self,
        ctx: &CallContext,
        r: MarkRead,
    ) -> Result<Notification, WireError> {
        let p = ctx.caller()?;
        store::mark_read(self.db(), &p.user_id, &r.id, now_ms())
            .await?
            .map(to_wire)
            .ok_or_else(not_found)
    }

    /// # Errors
    /// `unauthorized`, or `not_found` unless the caller owns the notification.
    pub(crate) async fn mark_unread(
        &self,
        ctx: &CallContext,
        r: MarkUnread,
    ) -> Result<Notification, WireError> {
        let p = ctx.caller()?;
        store::mark_unread(self.db(), &p.user_id, &r.id)
            .await?
            .map(to_wire)
            .ok_or_else(not_found)
    }

    /// # Errors
    /// `unauthorized` without a principal.
    pub(crate) async fn mark_all_read(
        &self,
        ctx: &CallContext,
        _: MarkAllRead,
    ) -> Result<MarkedAllRead, WireError> {
        let p = ctx.caller()?;
        let n = store::mark_all_read(self.db(), &p.user_id, now_ms()).await?;
        Ok(MarkedAllRead {
            updated: i64::try_from(n).unwrap_or(i64::MAX),
        })
    }

    /// # Errors
    /// `unauthorized`, or `not_found` unless the caller owns the notification.
    pub(crate) async fn delete(
        &self,
        ctx: &CallContext,
        r: DeleteNotification,
    ) -> Result<Deleted, WireError> {
        let p = ctx.caller()?;
        if store::delete(self.db(), &p.user_id, &r.id).await? {
            Ok(Deleted { ok: true })
        } else {
            Err(not_found())
        }
    }

    /// Keeps the directory entry of the account the event describes.
    ///
    /// # Errors
    /// On storage failure (the event is delivered again).
    pub(crate) async fn on_user_event(&self, e: UserEvent) -> Result<(), StoreError> {
        let row = store::UserRow {
            id: e.user.id,
            email: e.user.email,
            display_name: e.user.display_name,
            role: e.user.role.as_str().to_owned(),
            status: e.user.status.as_str().to_owned(),
            time_zone: e.user.time_zone,
        };
        store::upsert_user(self.db(), &row, e.at, e.version).await
    }

    /// Queues the password reset mail; it is deleted once sent, or when the token expires.
    ///
    /// # Errors
    /// On storage failure.
    pub(crate) async fn on_password_reset(
        &self,
        r: &PasswordResetIssued,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let expires_at = r.expires_at.saturating_mul(1000);
        if expires_at <= now {
            return Ok(());
        }
        let tz = self.zone_of(&r.user_id).await?;
        let msg = domain::reset_mail(
            &self.inner.cfg.public_url,
            &r.display_name,
            &r.token,
            expires_at,
            tz,
        );
        let mail = NewMail {
            id: uuid::Uuid::now_v7().to_string(),
            to_addr: Some(r.email.clone()),
            user_id: Some(r.user_id.clone()),
            kind: msg.kind,
            subject: msg.title,
            body: msg.body,
            now,
            expires_at: Some(expires_at),
            event_id: None,
        };
        store::queue_mail(self.db(), &mail).await?;
        self.inner.mail_queued.notify_one();
        tracing::info!(user_id = %r.user_id, mail_id = %mail.id, "password reset mail queued");
        Ok(())
    }

    async fn known(&self, id: Option<&str>) -> Result<Option<store::UserRow>, StoreError> {
        match id {
            Some(id) => store::user(self.db(), id).await,
            None => Ok(None),
        }
    }

    /// The zone `user`'s times are written in (UTC while the directory does not know them).
    async fn zone_of(&self, user: &str) -> Result<domain::Tz, StoreError> {
        let row = store::user(self.db(), user).await?;
        Ok(domain::zone(row.as_ref().map(|u| u.time_zone.as_str())))
    }

    /// [`Self::zone_of`] each of `users`.
    async fn zones_of(&self, users: Vec<&str>) -> Result<Zones, StoreError> {
        let mut zones = HashMap::new();
        for user in users {
            if !zones.contains_key(user) {
                zones.insert(user.to_owned(), self.zone_of(user).await?);
            }
        }
        Ok(Zones(zones))
    }

    /// Stores one notification per user the event names and queues their mail, and moves the
    /// appointment's reminders; then pushes the new notifications live. Idempotent per
    /// (event, user), also after the user deleted the notification; an event older than one
    /// already applied for the appointment is kept as read history, with no mail or push.
    ///
    /// # Errors
    /// On storage failure (the event is delivered again).
    pub(crate) async fn on_appointment_event(
        &self,
        e: &AppointmentEvent,
    ) -> Result<(), StoreError> {
        let a = &e.appointment;
        let actor_row = self
            .known(e.actor.as_ref().map(|x| x.user_id.as_str()))
            .await?;
        let actor = domain::actor_label(
            e.actor.as_ref(),
            actor_row.as_ref().and_then(person).as_ref(),
        );
        let patient = self
            .known(Some(&a.patient_id))
            .await?
            .map(|u| u.display_name);
        let doctor = self
            .known(a.doctor_id.as_deref())
            .await?
            .map(|u| domain::title_name(&u.display_name, Role::Doctor));
        let wording = Wording {
            actor: &actor,
            patient: patient.as_deref(),
            doctor: doctor.as_deref(),
        };
        let now = now_ms();
        let mut recipients: Vec<&str> = e.notify.iter().map(String::as_str).collect();
        recipients.sort_unstable();
        recipients.dedup();
        let mut people = recipients.clone();
        people.push(&a.patient_id);
        people.extend(a.doctor_id.as_deref());
        let zones = self.zones_of(people).await?;
        let deliveries: Vec<Delivery> = recipients
            .into_iter()
            .map(|user| {
                let msg = domain::appointment_message(e, user, zones.of(user), wording);
                self.delivery(&e.event_id, user, Some(&a.id), &msg, now)
            })
            .collect();
        let reminders = match domain::reminder_effect(e.kind) {
            ReminderEffect::Keep => ReminderChange::Keep,
            ReminderEffect::Withdraw => ReminderChange::Replace {
                appointment_id: a.id.clone(),
                version: a.version,
                reminders: Vec::new(),
            },
            ReminderEffect::Schedule => ReminderChange::Replace {
                appointment_id: a.id.clone(),
                version: a.version,
                reminders: self.plan_reminders(e, wording, &zones, now),
            },
        };
        let fresh =
            store::apply_event(self.db(), &deliveries, &reminders, &a.id, a.version, now).await?;
        if !fresh.is_empty() {
            self.inner.mail_queued.notify_one();
            tracing::info!(event_id = %e.event_id, kind = e.kind.as_str(), stored = fresh.len(), "appointment notifications stored");
        }
        self.push(fresh).await;
        Ok(())
    }

    /// The reminders of a confirmed appointment for both people. Their text is written again
    /// when sent (in the zone the recipient has then); the text stored now is what an instance
    /// of the previous version sends.
    fn plan_reminders(
        &self,
        e: &AppointmentEvent,
        w: Wording<'_>,
        zones: &Zones,
        now: i64,
    ) -> Vec<NewReminder> {
        let a = &e.appointment;
        let Some(start) = a.start.as_deref() else {
            return Vec::new();
        };
        let Some(start_ms) = domain::unix_ms(start) else {
            tracing::warn!(appointment_id = %a.id, "unparsable start time; no reminders");
            return Vec::new();
        };
        let mut people = vec![(a.patient_id.as_str(), w.doctor)];
        if let Some(d) = a.doctor_id.as_deref() {
            people.push((d, w.patient));
        }
        let planned = domain::plan_reminders(start_ms, &self.inner.cfg.reminders, now);
        people
            .into_iter()
            .flat_map(|(user, with)| {
                let tz = zones.of(user);
                planned.iter().map(move |p| {
                    let msg = domain::reminder_message(start, p.offset_ms, with, tz);
                    NewReminder {
                        id: uuid::Uuid::now_v7().to_string(),
                        user_id: user.to_owned(),
                        offset_ms: p.offset_ms,
                        starts_at: start.to_owned(),
                        due_at: p.due_at,
                        title: msg.title,
                        body: msg.body,
                        with_name: with.unwrap_or_default().to_owned(),
                    }
                })
            })
            .collect()
    }

    fn delivery(
        &self,
        event_id: &str,
        user: &str,
        appointment_id: Option<&str>,
        msg: &Message,
        now: i64,
    ) -> Delivery {
        Delivery {
            notification: NotificationRow {
                id: uuid::Uuid::now_v7().to_string(),
                user_id: user.to_owned(),
                kind: msg.kind.clone(),
                title: msg.title.clone(),
                body: msg.body.clone(),
                appointment_id: appointment_id.map(str::to_owned),
                created_at: now,
                read_at: None,
            },
            event_id: event_id.to_owned(),
            mail: Some(NewMail {
                id: uuid::Uuid::now_v7().to_string(),
                to_addr: None,
                user_id: Some(user.to_owned()),
                kind: msg.kind.clone(),
                subject: format!("carehub: {}", msg.title),
                body: domain::mail_body(msg, &self.inner.cfg.public_url),
                now,
                expires_at: None,
                event_id: Some(event_id.to_owned()),
            }),
        }
    }

    /// Publishes each new notification to its user's push subject (best effort: the list
    /// endpoint is the source of truth).
    async fn push(&self, fresh: Vec<NotificationRow>) {
        for row in fresh {
            let user_id = row.user_id.clone();
            let unread_count = match store::unread_count(self.db(), &user_id).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "unread count for a push failed");
                    continue;
                }
            };
            let pushed = NotificationPushed {
                user_id: user_id.clone(),
                notification: to_wire(row),
                unread_count,
            };
            if let Err(e) = self
                .inner
                .bus
                .publish(&push_subject(&user_id), &pushed)
                .await
            {
                tracing::warn!(error = %e, user_id = %user_id, "notification push failed");
            }
        }
    }

    async fn reset_subscriber(self, mut sub: async_nats::Subscriber, stop: CancellationToken) {
        loop {
            let msg = tokio::select! {
                () = stop.cancelled() => break,
                m = sub.next() => match m { Some(m) => m, None => break },
            };
            match serde_json::from_slice::<PasswordResetIssued>(&msg.payload) {
                Ok(r) => {
                    if let Err(e) = self.on_password_reset(&r).await {
                        tracing::error!(error = %e, user_id = %r.user_id, "password reset mail not queued");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "undecodable password reset event"),
            }
        }
        let _ = sub.unsubscribe().await;
    }

    async fn mail_sender(self, stop: CancellationToken) {
        loop {
            let sent = match self.send_due_mail().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "mail sender");
                    0
                }
            };
            if sent > 0 {
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.inner.mail_queued.notified() => {}
                () = tokio::time::sleep(MAIL_POLL) => {}
            }
        }
    }

    /// Delivers mail that is due, each claimed first so no other instance sends it too.
    /// Returns how many were handled.
    ///
    /// # Errors
    /// On storage failure.
    pub(crate) async fn send_due_mail(&self) -> Result<usize, StoreError> {
        let db = self.db();
        let now = now_ms();
        let purged = store::purge_expired_mail(db, now).await?;
        if purged > 0 {
            tracing::info!(mails = purged, "expired mail removed unsent");
        }
        let lease = i64::try_from(self.inner.cfg.mail_lease.as_millis()).unwrap_or(i64::MAX / 4);
        let mut handled = 0;
        for id in store::due_mail(db, now, BATCH).await? {
            let Some(mail) =
                store::claim_mail(db, &id, &self.inner.instance, now, now + lease).await?
            else {
                continue;
            };
            handled += 1;
            self.deliver(mail).await?;
        }
        Ok(handled)
    }

    async fn deliver(&self, mail: store::MailRow) -> Result<(), StoreError> {
        let cfg = &self.inner.cfg;
        let outcome = match mail.address.as_deref() {
            Some(to) => {
                self.inner
                    .mailer
                    .send(
                        &mail.id,
                        &cfg.mail_from,
                        to,
                        &mail.subject,
                        &mail.body,
                        mail.event_id.as_deref(),
                    )
                    .await
            }
            None => Err(SendError::Temporary(
                "the recipient's address is not known yet".into(),
            )),
        };
        let attempts = u32::try_from(mail.attempts)
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        let user_id = mail.user_id.as_deref().unwrap_or("");
        match outcome {
            Ok(()) => {
                store::remove_mail(self.db(), &mail.id).await?;
                tracing::info!(mail_id = %mail.id, kind = %mail.kind, user_id, attempts, "mail delivered");
            }
            Err(SendError::Temporary(e)) if attempts < cfg.mail_max_attempts => {
                let wait = domain::backoff(cfg.mail_retry_base, attempts);
                let next = now_ms() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 4);
                store::retry_mail(self.db(), &mail.id, &self.inner.instance, next).await?;
                tracing::warn!(mail_id = %mail.id, kind = %mail.kind, user_id, attempts, error = %e, retry_in_ms = wait.as_millis() as u64, "mail delivery failed; will retry");
            }
            Err(e) => {
                store::remove_mail(self.db(), &mail.id).await?;
                tracing::error!(mail_id = %mail.id, kind = %mail.kind, user_id, attempts, error = %e, "mail given up");
            }
        }
        Ok(())
    }

    async fn reminder_clock(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(REMINDER_POLL);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.send_due_reminders().await {
                tracing::warn!(error = %e, "reminders");
            }
        }
    }

    /// Turns due reminders into a notification and a mail each, once across all instances.
    ///
    /// # Errors
    /// On storage failure.
    pub(crate) async fn send_due_reminders(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        let mut sent = 0;
        for r in store::due_reminders(self.db(), now, BATCH).await? {
            let msg = match r.with_name.as_deref() {
                Some(with) => domain::reminder_message(
                    &r.starts_at,
                    r.offset_ms,
                    Some(with).filter(|w| !w.is_empty()),
                    domain::zone(r.time_zone.as_deref()),
                ),
                None => Message {
                    kind: "appointment_reminder".to_owned(),
                    title: r.title.clone(),
                    body: r.body.clone(),
                },
            };
            let delivery = self.delivery(
                &format!("reminder:{}", r.id),
                &r.user_id,
                Some(&r.appointment_id),
                &msg,
                now,
            );
            if let Some(row) = store::send_reminder(self.db(), &r.id, now, &delivery).await? {
                sent += 1;
                self.inner.mail_queued.notify_one();
                self.push(vec![row]).await;
            }
        }
        Ok(sent)
    }
}
