//! Waiting for a condition with a deadline, instead of sleeping for a fixed time.

use std::future::Future;
use std::time::Duration;

/// How often [`until`] asks again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `f` every ~20 ms until it returns `Some`, and returns that value.
///
/// A single call of `f` that hangs is cut off at the deadline too. `f` is always polled at
/// least once, so a condition that already holds passes even with a zero deadline.
///
/// # Panics
///
/// Panics with a message naming `what` when `deadline` passes before `f` returned `Some`.
pub(crate) async fn until<F, Fut, T>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        // `timeout_at` polls the inner future before looking at the clock.
        match tokio::time::timeout_at(give_up, f()).await {
            Ok(Some(value)) => return value,
            Ok(None) if tokio::time::Instant::now() < give_up => {}
            Ok(None) | Err(_) => panic!("timed out after {deadline:?} waiting for {what}"),
        }
        tokio::time::sleep_until(give_up.min(tokio::time::Instant::now() + POLL_INTERVAL)).await;
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port` (a child server started).
///
/// # Panics
///
/// As [`until`], naming `what`.
pub(crate) async fn listening(what: &str, port: u16, deadline: Duration) {
    until(what, deadline, || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
}
