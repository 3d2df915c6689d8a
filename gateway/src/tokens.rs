//! Access-token checks: auth verifies, the gateway may remember a positive answer briefly.
//!
//! A cached principal lives at most min(token expiry, configured TTL). Revocation events drop
//! matching entries (by token id, session or user); a NATS disconnect or reconnect drops them
//! all, because revocations may have been missed meanwhile. A verification that raced a
//! revocation is not cached after it (see [`EventCache`]).

use carehub_bus::Bus;
use carehub_nats::auth::{Revocation, Revoked, Verify};
use carehub_nats::{CallContext, Principal};
use carehub_runtime::cache::EventCache;
use futures::StreamExt;
use moka::future::Cache;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;

/// Upper bound on remembered tokens, so a flood of valid tokens cannot grow memory unbounded.
const MAX_ENTRIES: u64 = 100_000;

type Key = [u8; 32];

/// Verifies tokens through auth, with an optional cache. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Tokens {
    bus: Bus,
    cache: Option<EventCache<Key, Principal>>,
}

struct Lifetime {
    ttl: Duration,
}

impl moka::Expiry<Key, Principal> for Lifetime {
    fn expire_after_create(&self, _: &Key, p: &Principal, _: Instant) -> Option<Duration> {
        Some(self.ttl.min(remaining(p)))
    }
}

/// Time left before the token expires (zero if it has).
fn remaining(p: &Principal) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Duration::from_secs(u64::try_from(p.expires_at).unwrap_or(0).saturating_sub(now))
}

fn key(token: &str) -> Key {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// A verifier; `ttl` zero means every request is verified by auth.
    pub(crate) fn new(bus: Bus, ttl: Duration) -> Self {
        let cache = (!ttl.is_zero()).then(|| {
            EventCache::new(
                Cache::builder()
                    .max_capacity(MAX_ENTRIES)
                    .expire_after(Lifetime { ttl })
                    .build(),
            )
        });
        Self { bus, cache }
    }

    /// Who `token` belongs to.
    ///
    /// # Errors
    /// Auth's own error (`unauthorized`, `token_expired`, ...) or a bus failure (503/504).
    pub(crate) async fn verify(
        &self,
        ctx: &CallContext,
        token: &str,
    ) -> Result<Principal, ApiError> {
        let key = key(token);
        if let Some(cache) = &self.cache
            && let Some(p) = cache.get(&key).await
            && !remaining(&p).is_zero()
        {
            return Ok(p);
        }
        let ticket = self.cache.as_ref().map(EventCache::ticket);
        let principal = self
            .bus
            .request(
                ctx,
                &Verify {
                    token: token.to_owned(),
                },
            )
            .await?;
        if let (Some(cache), Some(ticket)) = (&self.cache, ticket) {
            cache.insert(ticket, key, principal.clone()).await;
        }
        Ok(principal)
    }

    /// Drops every cached principal the revocation covers.
    pub(crate) async fn revoke(&self, what: &Revocation) {
        let Some(cache) = &self.cache else { return };
        cache
            .invalidate_where(|p: &Principal| match what {
                Revocation::Token { jti, .. } => &p.jti == jti,
                Revocation::Session { session_id, .. } => &p.session_id == session_id,
                Revocation::User { user_id } => &p.user_id == user_id,
            })
            .await;
    }

    /// Drops everything (events may have been missed).
    pub(crate) fn clear(&self) {
        if let Some(cache) = &self.cache {
            cache.clear();
        }
    }

    /// Subscribes to revocation events; the returned future applies them until `stop`.
    ///
    /// # Errors
    /// When the subscription cannot be made.
    pub(crate) async fn subscribe_revocations(
        &self,
        stop: CancellationToken,
    ) -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
        let mut sub = self
            .bus
            .client()
            .subscribe(carehub_nats::auth::subject::REVOKED)
            .await?;
        self.bus.client().flush().await?;
        let this = self.clone();
        Ok(async move {
            loop {
                let msg = tokio::select! {
                    () = stop.cancelled() => break,
                    next = sub.next() => match next { Some(m) => m, None => break },
                };
                match serde_json::from_slice::<Revoked>(&msg.payload) {
                    Ok(ev) => this.revoke(&ev.what).await,
                    Err(e) => {
                        // Not understood: the safe reading is "anything may be revoked".
                        tracing::warn!(error = %e, "undecodable revocation event; clearing cache");
                        this.clear();
                    }
                }
            }
        })
    }

    /// A future that clears the cache on every disconnect and reconnect, until `stop`.
    pub(crate) fn watch_connection(
        &self,
        stop: CancellationToken,
    ) -> impl Future<Output = ()> + 'static {
        let cache = self.cache.clone();
        let watch = cache.map(|c| c.watch_connection(&self.bus, stop));
        async move {
            if let Some(watch) = watch {
                watch.await;
            }
        }
    }

    /// How many principals are cached (after pending maintenance), for tests.
    #[cfg(test)]
    pub(crate) async fn cached(&self) -> u64 {
        match &self.cache {
            Some(c) => c.len().await,
            None => 0,
        }
    }

    #[cfg(test)]
    pub(crate) async fn insert_for_test(&self, token: &str, p: Principal) {
        if let Some(c) = &self.cache {
            c.insert(c.ticket(), key(token), p).await;
        }
    }

    #[cfg(test)]
    pub(crate) async fn contains_for_test(&self, token: &str) -> bool {
        match &self.cache {
            Some(c) => c.get(&key(token)).await.is_some(),
            None => false,
        }
    }
}
