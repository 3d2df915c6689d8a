//! Per-client-address rate limiting of `/api` with a keyed GCRA limiter.

use crate::error::ApiError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// How often idle client entries are dropped, so memory stays bounded by recent clients.
const RETAIN_EVERY: Duration = Duration::from_secs(30);

/// A shared limiter; cheap to clone.
#[derive(Clone)]
pub(crate) struct Limiter {
    inner: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl Limiter {
    /// `None` when `per_sec` is zero (rate limiting off).
    pub(crate) fn new(per_sec: u32, burst: u32) -> Option<Self> {
        let per_sec = NonZeroU32::new(per_sec)?;
        let burst = NonZeroU32::new(burst).unwrap_or(per_sec);
        let quota = Quota::per_second(per_sec).allow_burst(burst);
        Some(Self {
            inner: Arc::new(RateLimiter::keyed(quota)),
        })
    }

    /// Counts one request from `client`.
    ///
    /// # Errors
    /// [`ApiError::rate_limited`] with the whole seconds until a request can succeed.
    pub(crate) fn check(&self, client: IpAddr) -> Result<(), ApiError> {
        self.inner.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::rate_limited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
        })
    }

    /// Forgets clients whose state is back to full, periodically, until `stop` is cancelled.
    pub(crate) async fn housekeeping(self, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(RETAIN_EVERY);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {
                    self.inner.retain_recent();
                    self.inner.shrink_to_fit();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_over_its_burst_is_told_when_to_retry_and_others_are_not_affected() {
        let l = Limiter::new(1, 2).unwrap();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(l.check(a).is_ok());
        assert!(l.check(a).is_ok());
        let err = l.check(a).unwrap_err();
        assert_eq!(err.code, carehub_nats::ErrorCode::RateLimited);
        assert_eq!(err.retry_after_secs, Some(1));
        assert!(l.check(b).is_ok());
    }

    #[test]
    fn zero_per_second_turns_limiting_off() {
        assert!(Limiter::new(0, 10).is_none());
    }
}
