//! The auth operations and their NATS endpoints. Each endpoint decodes, calls one method of
//! `AuthService`, and encodes; the methods hold the rules.

use crate::config::AuthConfig;
use crate::domain::{DisplayName, Email, NewPassword, TimeZoneName};
use crate::keys::Keys;
use crate::password::Hasher;
use crate::store::{self, NewUser, Rotation, UserFilter, UserRow};
use crate::throttle::Throttle;
use crate::{MIGRATOR, SPEC};
use anyhow::Context as _;
use base64::Engine as _;
use carehub_bus::Bus;
use carehub_nats::auth::subject as auth_subject;
use carehub_nats::auth::*;
use carehub_nats::sync::{
    AccountState, AccountVersions, Accounts, GetAccounts, Versions, check_batch, page_limit,
};
use carehub_nats::time::rfc3339_auto;
use carehub_nats::{CallContext, ErrorCode, Principal, Role, UserStatus, WireError};
use carehub_runtime::cache::EventCache;
use carehub_runtime::db::{Db, StoreError, like_contains, next_page, now_ms};
use carehub_runtime::outbox::{Pending, Relay};
use carehub_runtime::service::Running;
use futures::StreamExt as _;
use rand::RngCore as _;
use sha2::Digest as _;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The auth service's shared state. Cheap to clone.
#[derive(Clone)]
pub(crate) struct AuthService {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    bus: Bus,
    keys: Keys,
    hasher: Hasher,
    throttle: Throttle,
    relay: Relay,
    cfg: AuthConfig,
    /// Accounts as `me` answers them, by user id; `None` when the cache is off.
    accounts: Option<EventCache<String, User>>,
}

/// Upper bound on cached accounts.
const MAX_CACHED_ACCOUNTS: u64 = 100_000;

const GENERIC_REGISTER: &str = "If this address can be registered, the account is ready: sign in to continue. Doctor accounts are usable once an administrator approves them.";
const GENERIC_RESET: &str = "If an account uses this address, a password reset link is on its way.";

/// Migrates the database, loads the signing keys and serves every auth endpoint.
///
/// # Errors
/// When migrations fail, the key file is missing or invalid, or NATS refuses the subscriptions.
pub async fn start(cfg: AuthConfig, bus: Bus, db: Db) -> anyhow::Result<Running> {
    db.migrate(&MIGRATOR).await.context("auth migrations")?;
    let keys = Keys::load(&cfg.key_file, &cfg.issuer, &cfg.audience)?;
    let hasher = Hasher::new(cfg.hash_permits)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let throttle = Throttle {
        max_per_address: cfg.max_failures_per_address,
        max_per_account: cfg.max_failures_per_account,
        window_ms: i64::try_from(cfg.throttle_window.as_millis()).unwrap_or(i64::MAX),
    };
    let max_in_flight = cfg.max_in_flight;
    let js = carehub_bus::streams::ensure(
        &bus,
        &[carehub_nats::streams::USERS, carehub_nats::streams::AUDIT],
        &cfg.streams,
    )
    .await
    .context("creating the account event stream")?;
    let relay = Relay::new(crate::SPEC.name, db.clone(), js).with_options(cfg.relay);
    let running = Running::new(SPEC.name);
    let relay_task = relay.clone().spawn(running.stop_token());
    let accounts = (!cfg.account_cache_ttl.is_zero()).then(|| {
        EventCache::new(
            moka::future::Cache::builder()
                .max_capacity(MAX_CACHED_ACCOUNTS)
                .time_to_live(cfg.account_cache_ttl)
                .build(),
        )
    });
    if let Some(accounts) = &accounts {
        // Subscribed before serving, so no status change can slip between a read and its event.
        let changes = watch_account_events(&bus, accounts.clone(), running.stop_token())
            .await
            .context("subscribing to account events")?;
        running.spawn(changes);
        running.spawn(accounts.watch_connection(&bus, running.stop_token()));
    }
    let svc = AuthService {
        inner: Arc::new(Inner {
            db,
            bus: bus.clone(),
            keys,
            hasher,
            throttle,
            relay,
            cfg,
            accounts,
        }),
    };
    let micro = carehub_bus::serve!(&bus, SPEC, max_in_flight, svc,
        Register => register,
        Login => login,
        Refresh => refresh,
        Logout => logout,
        Verify => verify,
        Me => me,
        UpdateMe => update_me,
        ChangePassword => change_password,
        PasswordResetRequest => reset_request,
        PasswordResetConfirm => reset_confirm,
        AdminListUsers => admin_list,
        AdminGetUser => admin_get,
        AdminSetUserStatus => admin_set_status,
        AccountVersions => account_versions,
        GetAccounts => accounts,
    );
    running.spawn(housekeeping(svc, running.stop_token()));
    running.spawn(async move {
        let _ = relay_task.await;
    });
    Ok(running.serving(micro))
}

/// Drops the cached account of every user an account event names, whichever auth instance
/// made the change.
async fn watch_account_events(
    bus: &Bus,
    accounts: EventCache<String, User>,
    stop: CancellationToken,
) -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    let mut sub = bus
        .client()
        .subscribe(format!("{}.>", auth_subject::USER_EVENT_PREFIX))
        .await?;
    bus.client().flush().await?;
    Ok(async move {
        loop {
            let msg = tokio::select! {
                () = stop.cancelled() => break,
                next = sub.next() => match next { Some(m) => m, None => break },
            };
            match serde_json::from_slice::<UserEvent>(&msg.payload) {
                Ok(ev) => accounts.invalidate(&ev.user.id).await,
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable account event; clearing the account cache");
                    accounts.clear();
                }
            }
        }
    })
}

async fn housekeeping(svc: AuthService, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let window = svc.inner.throttle.window_ms;
        match store::purge_expired(&svc.inner.db, now_ms(), window).await {
            Ok(n) if n > 0 => tracing::debug!(rows = n, "purged expired auth rows"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "auth housekeeping failed"),
        }
    }
}

/// Creates an account directly in the auth database (the `carehub admin create-user` command
/// and the demo seed; there is deliberately no network endpoint that creates admins).
///
/// # Errors
/// When an input is invalid or the email is taken.
pub async fn create_user(
    db: &Db,
    email: &str,
    password: &str,
    display_name: &str,
    role: Role,
) -> anyhow::Result<User> {
    db.migrate(&MIGRATOR).await?;
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!(e.message))?;
    let name = DisplayName::parse(display_name).map_err(|e| anyhow::anyhow!(e.message))?;
    let pw = NewPassword::parse(password, Some(&email)).map_err(|e| anyhow::anyhow!(e.message))?;
    let hasher = Hasher::new(1)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let hash = hasher
        .hash(pw.expose())
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let id = uuid::Uuid::now_v7().to_string();
    let (row, event) = new_account(
        &id,
        &email,
        &name,
        &hash,
        role,
        UserStatus::Active,
        &TimeZoneName::utc(),
    )
    .map_err(|e| anyhow::anyhow!(e.message))?;
    anyhow::ensure!(
        store::insert_user(db, &row, &event).await?,
        "an account with this email already exists"
    );
    let user = store::user_by_id(db, &id)
        .await?
        .context("user vanished after insert")?;
    to_user(&user).map_err(|e| anyhow::anyhow!(e.message))
}

/// Whether the auth database holds any account (the demo seed refuses a non-empty one).
///
/// # Errors
/// On storage failure.
pub async fn has_users(db: &Db) -> anyhow::Result<bool> {
    db.migrate(&MIGRATOR).await?;
    Ok(store::count_users(db).await? > 0)
}

fn user_event(kind: UserEventKind, user: User, version: i64) -> Result<Pending, WireError> {
    let event_id = uuid::Uuid::now_v7().to_string();
    let event = UserEvent {
        event_id: event_id.clone(),
        kind,
        at: now_ms(),
        user,
        version,
    };
    Ok(Pending::new(kind.subject(), &event_id, &event)?)
}

/// A new account's row and the `user.registered` event that announces it, for self-registration
/// and `carehub admin create-user` alike.
fn new_account<'a>(
    id: &'a str,
    email: &'a Email,
    name: &'a DisplayName,
    password_hash: &'a str,
    role: Role,
    status: UserStatus,
    time_zone: &TimeZoneName,
) -> Result<(NewUser<'a>, Pending), WireError> {
    let row = NewUser {
        id,
        email: email.as_str(),
        display_name: name.as_str(),
        password_hash,
        role: role.as_str(),
        status: status.as_str(),
        time_zone: time_zone.as_str(),
        now: now_ms(),
    };
    let user = User {
        id: row.id.to_owned(),
        email: row.email.to_owned(),
        display_name: row.display_name.to_owned(),
        role,
        status,
        created_at: rfc3339_auto(row.now),
        time_zone: row.time_zone.to_owned(),
    };
    // A new row starts at version 1 (the column's default).
    let event = user_event(UserEventKind::Registered, user, 1)?;
    Ok((row, event))
}

fn to_user(row: &UserRow) -> Result<User, WireError> {
    let corrupt = |e: String| {
        tracing::error!(error = %e, user_id = %row.id, "corrupt user row");
        WireError::internal()
    };
    Ok(User {
        id: row.id.clone(),
        email: row.email.clone(),
        display_name: row.display_name.clone(),
        role: Role::parse(&row.role).map_err(corrupt)?,
        status: UserStatus::parse(&row.status).map_err(corrupt)?,
        created_at: rfc3339_auto(row.created_at),
        time_zone: row.time_zone.clone(),
    })
}

fn sha256_hex(s: &str) -> String {
    let d = sha2::Sha256::digest(s.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn secret_token(prefix: &str) -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    )
}

fn secs_i64(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

impl AuthService {
    fn db(&self) -> &Db {
        &self.inner.db
    }

    async fn publish_revoked(&self, what: Revocation, reason: &str) {
        let event = Revoked {
            what,
            reason: reason.to_owned(),
            at: now_ms() / 1000,
        };
        if let Err(e) = self.inner.bus.publish(auth_subject::REVOKED, &event).await {
            // Gateways also drop their caches on reconnect, and cache entries live briefly.
            tracing::warn!(error = %e, "could not publish a revocation");
        }
    }

    /// Signs an access token for a session.
    fn access_token(
        &self,
        user: &UserRow,
        role: Role,
        session_id: &str,
    ) -> Result<crate::keys::Issued, WireError> {
        self.inner.keys.issue(
            &user.id,
            role,
            session_id,
            user.token_generation,
            self.inner.cfg.access_ttl,
        )
    }

    /// Opens a new session for `user` and returns its tokens.
    async fn open_session(&self, user: &UserRow) -> Result<Session, WireError> {
        let view = to_user(user)?;
        let session_id = uuid::Uuid::now_v7().to_string();
        let refresh = secret_token("chr_");
        let now = now_ms();
        let refresh_ttl = secs_i64(self.inner.cfg.refresh_ttl);
        store::create_session(
            self.db(),
            &session_id,
            &user.id,
            &sha256_hex(&refresh),
            now,
            now + refresh_ttl * 1000,
        )
        .await?;
        let access = self.access_token(user, view.role, &session_id)?;
        Ok(Session {
            access_token: access.token,
            token_type: "Bearer".into(),
            expires_in: secs_i64(self.inner.cfg.access_ttl),
            refresh_token: refresh,
            refresh_expires_in: refresh_ttl,
            user: view,
        })
    }

    /// Self-registration. Answers the same whether or not the email is taken.
    ///
    /// # Errors
    /// `validation_failed` for bad input (an unknown time zone included).
    pub(crate) async fn register(
        &self,
        _ctx: &CallContext,
        r: Register,
    ) -> Result<Accepted, WireError> {
        let email = Email::parse(&r.email)?;
        let name = DisplayName::parse(&r.display_name)?;
        let pw = NewPassword::parse(&r.password, Some(&email))?;
        let zone = r
            .time_zone
            .as_deref()
            .map_or(Ok(TimeZoneName::utc()), TimeZoneName::parse)?;
        // Hash before looking anything up, so both outcomes take the same time.
        let hash = self.inner.hasher.hash(pw.expose()).await?;
        let role = Role::from(r.role);
        let status = if role == Role::Doctor {
            UserStatus::Pending
        } else {
            UserStatus::Active
        };
        let id = uuid::Uuid::now_v7().to_string();
        let (row, event) = new_account(&id, &email, &name, &hash, role, status, &zone)?;
        if store::insert_user(self.db(), &row, &event).await? {
            self.inner.relay.wake();
            tracing::info!(user_id = %id, role = role.as_str(), "account registered");
        } else {
            tracing::info!("registration for an address already in use ignored");
        }
        Ok(Accepted {
            message: GENERIC_REGISTER.into(),
        })
    }

    /// Password login, throttled per (account, client address) and per account.
    ///
    /// # Errors
    /// `invalid_credentials`, `rate_limited`, or `account_disabled` (only after a correct password).
    pub(crate) async fn login(&self, ctx: &CallContext, r: Login) -> Result<Session, WireError> {
        let wrong = || {
            WireError::new(
                ErrorCode::InvalidCredentials,
                "email or password is incorrect",
            )
        };
        let Ok(email) = Email::parse(&r.email) else {
            return Err(wrong());
        };
        let client = ctx.client_ip.as_deref().unwrap_or("unknown");
        let now = now_ms();
        let throttle = &self.inner.throttle;
        throttle
            .check(self.db(), email.as_str(), client, now)
            .await?;
        let user = store::user_by_email(self.db(), email.as_str()).await?;
        let ok = self
            .inner
            .hasher
            .verify(&r.password, user.as_ref().map(|u| u.password_hash.as_str()))
            .await;
        let Some(user) = user.filter(|_| ok) else {
            throttle
                .failed(self.db(), email.as_str(), client, now)
                .await?;
            tracing::info!("login failed");
            return Err(wrong());
        };
        if matches!(user.status.as_str(), "disabled" | "rejected") {
            return Err(WireError::new(
                ErrorCode::AccountDisabled,
                "this account is not active; contact the clinic",
            ));
        }
        throttle
            .succeeded(self.db(), email.as_str(), client)
            .await?;
        tracing::info!(user_id = %user.id, "login");
        self.open_session(&user).await
    }

    /// Rotates a refresh token. Presenting a used one ends its whole session, unless it is a
    /// retry of a renewal whose answer was lost (see `store::rotate_refresh`).
    ///
    /// # Errors
    /// `unauthorized` for an unknown, expired, revoked or reused token; `account_disabled`.
    pub(crate) async fn refresh(
        &self,
        _ctx: &CallContext,
        r: Refresh,
    ) -> Result<Session, WireError> {
        let fresh = secret_token("chr_");
        let now = now_ms();
        let ttl = secs_i64(self.inner.cfg.refresh_ttl);
        let outcome = store::rotate_refresh(
            self.db(),
            &sha256_hex(&r.refresh_token),
            &sha256_hex(&fresh),
            now,
            now + ttl * 1000,
            i64::try_from(self.inner.cfg.refresh_reuse_grace.as_millis()).unwrap_or(i64::MAX),
        )
        .await?;
        match outcome {
            Rotation::Invalid => Err(WireError::unauthorized(
                "invalid or expired refresh token; sign in again",
            )),
            Rotation::Reused {
                session_id,
                user_id,
            } => {
                tracing::warn!(user_id = %user_id, session_id = %session_id, "refresh token reuse: session revoked");
                self.publish_revoked(
                    Revocation::Session {
                        session_id,
                        user_id,
                    },
                    "refresh_reuse",
                )
                .await;
                Err(WireError::unauthorized(
                    "this refresh token was already used; the session was ended for safety, sign in again",
                ))
            }
            Rotation::Rotated { session_id, user } => {
                if matches!(user.status.as_str(), "disabled" | "rejected") {
                    return Err(WireError::new(
                        ErrorCode::AccountDisabled,
                        "this account is not active",
                    ));
                }
                let view = to_user(&user)?;
                let access = self.access_token(&user, view.role, &session_id)?;
                Ok(Session {
                    access_token: access.token,
                    token_type: "Bearer".into(),
                    expires_in: secs_i64(self.inner.cfg.access_ttl),
                    refresh_token: fresh,
                    refresh_expires_in: ttl,
                    user: view,
                })
            }
        }
    }

    /// Ends the caller's session: the access token is denylisted until it expires and the
    /// refresh family is revoked.
    ///
    /// # Errors
    /// `unauthorized` without a principal.
    pub(crate) async fn logout(&self, ctx: &CallContext, r: Logout) -> Result<Done, WireError> {
        let p = ctx.caller()?;
        store::deny_token(self.db(), &p.jti, p.expires_at.saturating_mul(1000)).await?;
        let now = now_ms();
        store::revoke_session(self.db(), &p.session_id, "logout", now).await?;
        let other = match r.refresh_token.as_deref() {
            Some(rt) => store::session_of_refresh(self.db(), &sha256_hex(rt)).await?,
            None => None,
        };
        // A refresh token of another of the caller's sessions ends that session too.
        if let Some((sid, uid)) =
            other.filter(|(sid, uid)| *uid == p.user_id && *sid != p.session_id)
            && store::revoke_session(self.db(), &sid, "logout", now).await?
        {
            self.publish_revoked(
                Revocation::Session {
                    session_id: sid,
                    user_id: uid,
                },
                "logout",
            )
            .await;
        }
        self.publish_revoked(
            Revocation::Token {
                jti: p.jti.clone(),
                user_id: p.user_id.clone(),
            },
            "logout",
        )
        .await;
        self.publish_revoked(
            Revocation::Session {
                session_id: p.session_id.clone(),
                user_id: p.user_id.clone(),
            },
            "logout",
        )
        .await;
        tracing::info!(user_id = %p.user_id, "logout");
        Ok(Done { ok: true })
    }

    /// A page of account versions for the services that keep a copy of accounts
    /// ([`carehub_nats::sync`]; NATS permissions decide who may ask).
    ///
    /// # Errors
    /// On storage failure.
    pub(crate) async fn account_versions(
        &self,
        _ctx: &CallContext,
        r: AccountVersions,
    ) -> Result<Versions, WireError> {
        let rows = store::account_versions(
            self.db(),
            r.after.as_deref().unwrap_or(""),
            r.role.map(Role::as_str),
            i64::from(page_limit(r.limit)),
        )
        .await?;
        Ok(Versions::from(rows))
    }

    /// The current state of up to a page of accounts, for a copy that missed their events.
    ///
    /// # Errors
    /// `validation_failed` for more than a page of ids; on storage failure.
    pub(crate) async fn accounts(
        &self,
        _ctx: &CallContext,
        r: GetAccounts,
    ) -> Result<Accounts, WireError> {
        check_batch(&r.ids)?;
        let rows = store::users_by_ids(self.db(), &r.ids).await?;
        let accounts = rows
            .iter()
            .map(|row| {
                Ok(AccountState {
                    user: to_user(row)?,
                    version: row.version,
                    at: row.updated_at,
                })
            })
            .collect::<Result<_, WireError>>()?;
        Ok(Accounts { accounts })
    }

    /// Token → principal: signature, claims, and the revocation state in the database.
    ///
    /// # Errors
    /// `token_expired` or `unauthorized`.
    pub(crate) async fn verify(
        &self,
        _ctx: &CallContext,
        r: Verify,
    ) -> Result<Principal, WireError> {
        let claims = self.inner.keys.verify(&r.token)?;
        let revoked = || WireError::unauthorized("access token revoked; sign in again");
        let state = store::token_state(self.db(), &claims.sub, &claims.sid, &claims.jti)
            .await?
            .ok_or_else(revoked)?;
        if state.token_revoked != 0
            || state.session_revoked != 0
            || state.token_generation != claims.tgen
        {
            return Err(revoked());
        }
        let status = UserStatus::parse(&state.status).map_err(|_| WireError::internal())?;
        if matches!(status, UserStatus::Disabled | UserStatus::Rejected) {
            return Err(revoked());
        }
        Ok(Principal {
            user_id: claims.sub,
            role: Role::parse(&state.role).map_err(|_| WireError::internal())?,
            status,
            jti: claims.jti,
            session_id: claims.sid,
            expires_at: claims.exp,
        })
    }

    /// The caller's own account, read fresh.
    ///
    /// # Errors
    /// `unauthorized` without a principal, `not_found` if the account vanished.
    pub(crate) async fn me(&self, ctx: &CallContext, _r: Me) -> Result<User, WireError> {
        let p = ctx.caller()?;
        let accounts = self.inner.accounts.as_ref();
        if let Some(user) = accounts.map(|a| a.get(&p.user_id))
            && let Some(user) = user.await
        {
            return Ok(user);
        }
        let ticket = accounts.map(EventCache::ticket);
        let row = store::user_by_id(self.db(), &p.user_id)
            .await?
            .ok_or_else(|| WireError::not_found("account not found"))?;
        let user = to_user(&row)?;
        if let (Some(accounts), Some(ticket)) = (accounts, ticket) {
            accounts.insert(ticket, row.id, user.clone()).await;
        }
        Ok(user)
    }

    /// Changes what the owner may change of their account (its time zone); the change reaches
    /// other services as an `updated` account event.
    ///
    /// # Errors
    /// `unauthorized` without a principal, `validation_failed` for an unknown time zone,
    /// `not_found` if the account vanished.
    pub(crate) async fn update_me(
        &self,
        ctx: &CallContext,
        r: UpdateMe,
    ) -> Result<User, WireError> {
        let p = ctx.caller()?;
        let Some(zone) = r
            .time_zone
            .as_deref()
            .map(TimeZoneName::parse)
            .transpose()?
        else {
            return self.me(ctx, Me {}).await;
        };
        let row = store::set_time_zone(self.db(), &p.user_id, zone.as_str(), now_ms(), |row| {
            let user = to_user(row).map_err(|e| StoreError::Conflict(e.message))?;
            user_event(UserEventKind::Updated, user, row.version)
                .map_err(|e| StoreError::Conflict(e.message))
        })
        .await?
        .ok_or_else(|| WireError::not_found("account not found"))?;
        self.inner.relay.wake();
        if let Some(accounts) = &self.inner.accounts {
            // This instance answers from fresh data at once; the others when the event arrives.
            accounts.invalidate(&p.user_id).await;
        }
        tracing::info!(user_id = %p.user_id, "account time zone set");
        to_user(&row)
    }

    /// Changes the password; every other session and token of the user ends, and the caller
    /// gets a fresh session.
    ///
    /// # Errors
    /// `forbidden` for a wrong current password, `validation_failed` for a weak new one,
    /// `rate_limited` after repeated wrong passwords.
    pub(crate) async fn change_password(
        &self,
        ctx: &CallContext,
        r: ChangePassword,
    ) -> Result<Session, WireError> {
        let p = ctx.caller()?;
        let user = store::user_by_id(self.db(), &p.user_id)
            .await?
            .ok_or_else(|| WireError::not_found("account not found"))?;
        let email = Email::parse(&user.email)?;
        let pw = NewPassword::parse(&r.new_password, Some(&email))?;
        let client = ctx.client_ip.as_deref().unwrap_or("unknown");
        let now = now_ms();
        self.inner
            .throttle
            .check(self.db(), email.as_str(), client, now)
            .await?;
        if !self
            .inner
            .hasher
            .verify(&r.current_password, Some(&user.password_hash))
            .await
        {
            self.inner
                .throttle
                .failed(self.db(), email.as_str(), client, now)
                .await?;
            return Err(WireError::forbidden("current_password: incorrect"));
        }
        let hash = self.inner.hasher.hash(pw.expose()).await?;
        store::set_password(self.db(), &user.id, &hash, "password_change", now).await?;
        self.publish_revoked(
            Revocation::User {
                user_id: user.id.clone(),
            },
            "password_change",
        )
        .await;
        tracing::info!(user_id = %user.id, "password changed");
        let user = store::user_by_id(self.db(), &p.user_id)
            .await?
            .ok_or_else(|| WireError::not_found("account not found"))?;
        self.open_session(&user).await
    }

    /// Issues a single-use reset token to the notification side. Same answer for any address.
    ///
    /// # Errors
    /// `validation_failed` for a malformed address.
    pub(crate) async fn reset_request(
        &self,
        _ctx: &CallContext,
        r: PasswordResetRequest,
    ) -> Result<Accepted, WireError> {
        let email = Email::parse(&r.email)?;
        let user = store::user_by_email(self.db(), email.as_str()).await?;
        if let Some(user) = user.filter(|u| matches!(u.status.as_str(), "active" | "pending")) {
            let token = secret_token("chp_");
            let now = now_ms();
            let expires_at = now + secs_i64(self.inner.cfg.reset_ttl) * 1000;
            store::insert_reset(self.db(), &sha256_hex(&token), &user.id, now, expires_at).await?;
            let issued = PasswordResetIssued {
                user_id: user.id.clone(),
                email: user.email.clone(),
                display_name: user.display_name.clone(),
                token,
                expires_at: expires_at / 1000,
            };
            if let Err(e) = self
                .inner
                .bus
                .publish(auth_subject::PASSWORD_RESET, &issued)
                .await
            {
                tracing::warn!(error = %e, user_id = %user.id, "could not hand a reset token to the notification side");
            }
            tracing::info!(user_id = %user.id, "password reset issued");
        }
        Ok(Accepted {
            message: GENERIC_RESET.into(),
        })
    }

    /// Sets a new password with a reset token; every session of the user ends.
    ///
    /// # Errors
    /// `validation_failed` for a weak password, `unauthorized` for an invalid, used or expired token.
    pub(crate) async fn reset_confirm(
        &self,
        _ctx: &CallContext,
        r: PasswordResetConfirm,
    ) -> Result<Accepted, WireError> {
        let pw = NewPassword::parse(&r.new_password, None)?;
        let hash = self.inner.hasher.hash(pw.expose()).await?;
        let user_id = store::reset_password(self.db(), &sha256_hex(&r.token), &hash, now_ms())
            .await?
            .ok_or_else(|| WireError::unauthorized("invalid, used or expired reset token"))?;
        self.publish_revoked(
            Revocation::User {
                user_id: user_id.clone(),
            },
            "password_reset",
        )
        .await;
        tracing::info!(user_id = %user_id, "password reset completed");
        Ok(Accepted {
            message: "Password changed. Sign in with the new password.".into(),
        })
    }

    fn require_admin<'c>(&self, ctx: &'c CallContext) -> Result<&'c Principal, WireError> {
        let p = ctx.caller()?;
        if p.role != Role::Admin || p.status != UserStatus::Active {
            return Err(WireError::forbidden("administrators only"));
        }
        Ok(p)
    }

    /// Lists accounts, newest last, filtered and keyset-paginated.
    ///
    /// # Errors
    /// `forbidden` for non-admins, `validation_failed` for a bad limit.
    pub(crate) async fn admin_list(
        &self,
        ctx: &CallContext,
        r: AdminListUsers,
    ) -> Result<UserPage, WireError> {
        self.require_admin(ctx)?;
        let limit = i64::from(r.limit.unwrap_or(50));
        if !(1..=200).contains(&limit) {
            return Err(WireError::validation("limit: must be between 1 and 200"));
        }
        let pattern =
            r.q.as_deref()
                .map(str::trim)
                .filter(|q| !q.is_empty())
                .map(like_contains);
        let filter = UserFilter {
            role: r.role.map(Role::as_str),
            status: r.status.map(UserStatus::as_str),
            pattern,
            after_id: r.cursor.as_deref().filter(|c| !c.is_empty()),
            limit: limit + 1,
        };
        let mut rows = store::list_users(self.db(), &filter).await?;
        let next_cursor = next_page(&mut rows, limit, |u| u.id.clone());
        let users = rows.iter().map(to_user).collect::<Result<_, _>>()?;
        Ok(UserPage { users, next_cursor })
    }

    /// # Errors
    /// `forbidden` for non-admins, `not_found`.
    pub(crate) async fn admin_get(
        &self,
        ctx: &CallContext,
        r: AdminGetUser,
    ) -> Result<User, WireError> {
        self.require_admin(ctx)?;
        let user = store::user_by_id(self.db(), &r.user_id)
            .await?
            .ok_or_else(|| WireError::not_found("user not found"))?;
        to_user(&user)
    }

    /// Disabling a doctor who has confirmed appointments answers 409 `appointments_affected`
    /// listing them, unless
    /// forced: then the admin service cancels them first, telling each patient why.
    async fn clear_doctor_appointments(
        &self,
        ctx: &CallContext,
        admin: &Principal,
        r: &AdminSetUserStatus,
    ) -> Result<(), WireError> {
        let Some(user) = store::user_by_id(self.db(), &r.user_id).await? else {
            return Ok(());
        };
        if user.role != Role::Doctor.as_str() {
            return Ok(());
        }
        let reason = match r.reason.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(why) => format!("the doctor is no longer available: {why}"),
            None => "the doctor is no longer available".to_owned(),
        };
        let actor = carehub_nats::appointment::Actor {
            user_id: admin.user_id.clone(),
            role: admin.role,
            display_name: None,
        };
        carehub_runtime::absence::clear_for_absence(
            &self.inner.bus,
            ctx,
            &user.id,
            &rfc3339_auto(now_ms()),
            None,
            r.force,
            reason,
            actor,
            "the doctor has",
        )
        .await
    }

    /// Approve or reject a pending doctor, disable or enable an account. Disabling and
    /// rejecting end every session at once. Recorded in the audit log.
    ///
    /// # Errors
    /// `forbidden`, `not_found`, `conflict` when the account is not in a state the action
    /// applies to (or an admin tries to disable themselves), `appointments_affected` when
    /// disabling a doctor with confirmed appointments without `force`.
    pub(crate) async fn admin_set_status(
        &self,
        ctx: &CallContext,
        r: AdminSetUserStatus,
    ) -> Result<User, WireError> {
        let admin = self.require_admin(ctx)?;
        if r.reason.as_deref().is_some_and(|s| s.chars().count() > 500) {
            return Err(WireError::validation("reason: at most 500 characters"));
        }
        let (from, to, ends, name): (&[&str], &str, bool, &str) = match r.action {
            StatusAction::Approve => (&["pending"], "active", false, "approve"),
            StatusAction::Reject => (&["pending"], "rejected", true, "reject"),
            StatusAction::Disable => (&["active", "pending"], "disabled", true, "disable"),
            StatusAction::Enable => (&["disabled"], "active", false, "enable"),
        };
        if r.user_id == admin.user_id && ends {
            return Err(WireError::conflict("you cannot disable your own account"));
        }
        if r.action == StatusAction::Disable {
            self.clear_doctor_appointments(ctx, admin, &r).await?;
        }
        let row = store::transition_status(
            self.db(),
            &r.user_id,
            from,
            to,
            ends,
            &admin.user_id,
            name,
            r.reason.as_deref(),
            now_ms(),
            |row| {
                let user = to_user(row).map_err(|e| StoreError::Conflict(e.message))?;
                let changed = user_event(UserEventKind::StatusChanged, user, row.version)
                    .map_err(|e| StoreError::Conflict(e.message))?;
                // Every admin action joins the audit trail admins read.
                let entry = carehub_nats::audit::AuditEntry {
                    event_id: uuid::Uuid::now_v7().to_string(),
                    at: now_ms(),
                    service: SPEC.name.into(),
                    actor_id: admin.user_id.clone(),
                    actor_role: admin.role.as_str().into(),
                    subject_id: Some(row.id.clone()),
                    action: format!("user.{name}"),
                    reason: r.reason.clone(),
                    actor_name: None,
                    subject_name: None,
                };
                let audit = Pending::new(
                    &carehub_nats::audit::subject(SPEC.name),
                    &entry.event_id,
                    &entry,
                )?;
                Ok(vec![changed, audit])
            },
        )
        .await?;
        self.inner.relay.wake();
        if let Some(accounts) = &self.inner.accounts {
            // This instance answers from fresh data at once; the others when the event arrives.
            accounts.invalidate(&r.user_id).await;
        }
        let Some(row) = row else {
            let current = store::user_by_id(self.db(), &r.user_id)
                .await?
                .ok_or_else(|| WireError::not_found("user not found"))?;
            return Err(WireError::conflict(format!(
                "the account is {}; cannot {name} it",
                current.status
            )));
        };
        if ends {
            self.publish_revoked(
                Revocation::User {
                    user_id: row.id.clone(),
                },
                name,
            )
            .await;
        }
        tracing::info!(user_id = %row.id, admin_id = %admin.user_id, action = name, "account status changed");
        to_user(&row)
    }
}
