//! Login throttling, shared by every auth instance through the auth database.
//!
//! Two counters per attempt, each over a fixed window:
//! - (account, client address): after `max_per_address` failures that address is refused for
//!   the rest of the window (429 with Retry-After). This stops guessing from one place without
//!   touching the real user elsewhere.
//! - account alone: after `max_per_account` failures from anywhere, each further failure makes
//!   the account wait a little longer (1 s, 2 s, 4 s … capped at [`MAX_BACKOFF_SECS`]), so a
//!   distributed guesser is slowed to a crawl but the real user is only ever delayed, never
//!   locked out.
//!
//! A success clears both counters. Checks happen before the password is hashed, so a refused
//! attempt costs no argon2 time.

use crate::store;
use carehub_nats::WireError;
use carehub_runtime::db::{Db, StoreError};

/// The longest an account-wide back-off makes anyone wait.
pub(crate) const MAX_BACKOFF_SECS: i64 = 60;

#[derive(Debug, Clone)]
pub(crate) struct Throttle {
    pub(crate) max_per_address: i64,
    pub(crate) max_per_account: i64,
    pub(crate) window_ms: i64,
}

fn keys(email: &str, client: &str) -> (String, String) {
    (format!("addr:{email}|{client}"), format!("acct:{email}"))
}

impl Throttle {
    /// Refuses the attempt if either counter blocks it.
    ///
    /// # Errors
    /// `rate_limited` (with seconds to wait) when blocked; storage failures as internal.
    pub(crate) async fn check(
        &self,
        db: &Db,
        email: &str,
        client: &str,
        now: i64,
    ) -> Result<(), WireError> {
        let (a, b) = keys(email, client);
        let rows = store::throttle_rows(db, &a, &b).await?;
        let wait_ms = rows
            .iter()
            .filter(|r| r.window_start > now - self.window_ms || r.blocked_until > now)
            .map(|r| r.blocked_until - now)
            .max()
            .unwrap_or(0);
        if wait_ms > 0 {
            let secs = u64::try_from((wait_ms + 999) / 1000).unwrap_or(1);
            return Err(WireError::rate_limited(secs));
        }
        Ok(())
    }

    /// Counts a failed attempt and blocks what the policy says to block.
    ///
    /// # Errors
    /// On storage failure.
    pub(crate) async fn failed(
        &self,
        db: &Db,
        email: &str,
        client: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let (a, b) = keys(email, client);
        let per_address = store::throttle_fail(db, &a, now, self.window_ms).await?;
        if per_address.failures >= self.max_per_address {
            store::throttle_block(db, &a, per_address.window_start + self.window_ms).await?;
        }
        let per_account = store::throttle_fail(db, &b, now, self.window_ms).await?;
        if per_account.failures >= self.max_per_account {
            let over =
                u32::try_from(per_account.failures - self.max_per_account).unwrap_or(u32::MAX);
            let backoff = 1i64
                .checked_shl(over.min(16))
                .unwrap_or(MAX_BACKOFF_SECS)
                .min(MAX_BACKOFF_SECS);
            store::throttle_block(db, &b, now + backoff * 1000).await?;
        }
        Ok(())
    }

    /// Clears both counters after a successful login.
    ///
    /// # Errors
    /// On storage failure.
    pub(crate) async fn succeeded(
        &self,
        db: &Db,
        email: &str,
        client: &str,
    ) -> Result<(), StoreError> {
        let (a, b) = keys(email, client);
        store::throttle_clear(db, &a, &b).await
    }
}
