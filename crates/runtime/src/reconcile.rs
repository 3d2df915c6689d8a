//! Reconciliation of versioned copies: a service that keeps a copy of records another service
//! owns (accounts, doctors) pages through the owner's `(id, version)` list
//! ([`carehub_nats::sync`], [`PAGE`] per page, by id), compares it with the versions it holds,
//! and fetches the current state of every record it lacks or holds older, in batches, applying
//! each with the same rule as an event (an older state never replaces a newer one).
//!
//! This repairs what no event can any more: an event lost with a stream's tail and no longer in
//! its producer's `outbox_sent`, or a copy row lost with a restored database. Records derived
//! from events (notifications, mails, reminders, the audit log) are not repaired here: only the
//! original event, republished from `outbox_sent`, may make them.
//!
//! A pass runs 5 s after start, then every `CAREHUB_RECONCILE_COPIES_INTERVAL` (by default the
//! check interval, `CAREHUB_RECONCILE_INTERVAL`), and at once after the service's consumer
//! re-created its durable ([`Trigger`]). `CAREHUB_RECONCILE_COPIES_INTERVAL=off` turns the passes
//! off, and `CAREHUB_RECONCILE=off` turns them off with the position checks. Every instance runs
//! its own passes; they only read unless something is behind.
//! Each pass counts `carehub_reconcile_runs_total{component,kind}`; each record repaired,
//! `carehub_reconcile_repaired_total{component,kind}`, with one warning naming up to 20 ids.

use crate::db::{Db, StoreError};
use crate::with_db;
use carehub_bus::Bus;
use carehub_nats::auth::UserEvent;
use carehub_nats::sync::{AccountVersions, GetAccounts, IdVersion, PAGE};
use carehub_nats::{CallContext, Role};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long after start the first pass runs.
const FIRST_DELAY: Duration = Duration::from_secs(5);
/// How soon a pass that failed (the owner not answering) is tried again.
const RETRY: Duration = Duration::from_secs(5);
/// Ids named in a repair's warning.
const NAMED_IDS: usize = 20;

/// Asks for a pass at once (a consumer that re-created its durable pulls it).
#[derive(Debug, Clone, Default)]
pub struct Trigger(Arc<Notify>);

impl Trigger {
    /// Runs a pass as soon as the current one (if any) is done.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// A copy that can be reconciled with its owner.
pub trait Reconciled: Send + Sync + 'static {
    /// The owner's versions after `after` (from the first without it), by id; a page shorter
    /// than [`PAGE`] is the last.
    fn page(
        &self,
        after: Option<String>,
    ) -> impl Future<Output = anyhow::Result<Vec<IdVersion>>> + Send;
    /// The versions the copy holds of `ids` (absent: not held).
    fn held(
        &self,
        ids: &[String],
    ) -> impl Future<Output = anyhow::Result<HashMap<String, i64>>> + Send;
    /// Fetches the owner's current state of `ids` and applies it; returns the ids applied.
    fn repair(&self, ids: Vec<String>) -> impl Future<Output = anyhow::Result<Vec<String>>> + Send;
}

/// One pass over the owner's whole list; returns how many records were repaired.
///
/// # Errors
/// When the owner or the database does not answer; what was repaired before stays repaired.
pub async fn pass<C: Reconciled>(
    component: &'static str,
    kind: &'static str,
    copy: &C,
) -> anyhow::Result<usize> {
    ::metrics::counter!("carehub_reconcile_runs_total", "component" => component, "kind" => kind)
        .increment(1);
    let mut repaired: Vec<String> = Vec::new();
    let mut after = None;
    let outcome = async {
        loop {
            let page = copy.page(after.take()).await?;
            let Some(last) = page.last() else { break };
            let next = last.id.clone();
            let ids: Vec<String> = page.iter().map(|i| i.id.clone()).collect();
            let held = copy.held(&ids).await?;
            let behind: Vec<String> = page
                .iter()
                .filter(|i| held.get(&i.id).is_none_or(|v| *v < i.version))
                .map(|i| i.id.clone())
                .collect();
            if !behind.is_empty() {
                repaired.extend(copy.repair(behind).await?);
            }
            if page.len() < PAGE as usize {
                break;
            }
            after = Some(next);
        }
        anyhow::Ok(())
    }
    .await;
    if !repaired.is_empty() {
        ::metrics::counter!("carehub_reconcile_repaired_total", "component" => component, "kind" => kind)
            .increment(repaired.len() as u64);
        let named: Vec<&str> = repaired
            .iter()
            .take(NAMED_IDS)
            .map(String::as_str)
            .collect();
        tracing::warn!(
            kind,
            repaired = repaired.len(),
            ids = %named.join(","),
            "copies were behind their owner; repaired from its current state"
        );
    }
    outcome.map(|()| repaired.len())
}

/// Runs [`pass`] 5 s after start, then every `every` and whenever `trigger` is woken, until
/// `stop`; a failed pass is tried again in 5 s. `None`: never.
pub async fn run<C: Reconciled>(
    component: &'static str,
    kind: &'static str,
    copy: C,
    every: Option<Duration>,
    trigger: Trigger,
    stop: CancellationToken,
) {
    let Some(every) = every else { return };
    let mut wait = FIRST_DELAY.min(every);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
            () = trigger.0.notified() => {}
        }
        wait = match pass(component, kind, &copy).await {
            Ok(_) => every,
            Err(e) => {
                tracing::warn!(error = %e, kind, "reconciliation pass failed; trying again shortly");
                RETRY.min(every)
            }
        };
    }
}

/// The versions held of `ids` by the query `select` (`SELECT id, version FROM … WHERE id IN (`;
/// the id list and the closing parenthesis are appended).
///
/// # Errors
/// On storage failure.
pub async fn held_versions(
    db: &Db,
    select: &'static str,
    ids: &[String],
) -> Result<HashMap<String, i64>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, i64)> = with_db!(db, p => {
        let mut qb = sqlx::QueryBuilder::new(select);
        let mut list = qb.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        qb.push(")");
        qb.build_query_as().fetch_all(p).await?
    });
    Ok(rows.into_iter().collect())
}

/// A service's copy of accounts, reconciled with the auth service: `held` is the
/// [`held_versions`] query of the copy's `account_version`, `apply` the copy's account event
/// handler, given the account's current state as an event.
pub struct Accounts<F> {
    pub bus: Bus,
    pub db: Db,
    /// Only accounts of this role are copied.
    pub role: Option<Role>,
    pub held: &'static str,
    pub apply: F,
}

impl<F, Fut> Reconciled for Accounts<F>
where
    F: Fn(UserEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), StoreError>> + Send,
{
    async fn page(&self, after: Option<String>) -> anyhow::Result<Vec<IdVersion>> {
        let req = AccountVersions {
            after,
            limit: None,
            role: self.role,
        };
        Ok(self
            .bus
            .request(&CallContext::internal(), &req)
            .await?
            .items)
    }

    async fn held(&self, ids: &[String]) -> anyhow::Result<HashMap<String, i64>> {
        Ok(held_versions(&self.db, self.held, ids).await?)
    }

    async fn repair(&self, ids: Vec<String>) -> anyhow::Result<Vec<String>> {
        let found = self
            .bus
            .request(&CallContext::internal(), &GetAccounts { ids })
            .await?;
        let mut applied = Vec::with_capacity(found.accounts.len());
        for state in found.accounts {
            let id = state.user.id.clone();
            (self.apply)(state.into_event()).await?;
            applied.push(id);
        }
        Ok(applied)
    }
}
