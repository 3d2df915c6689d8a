//! A running service instance: its micro service endpoints plus the background tasks it owns
//! (outbox relay, consumers, housekeeping), stopped together by one call.

use carehub_bus::MicroService;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What `start` of every service returns.
pub struct Running {
    name: &'static str,
    micro: Option<MicroService>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// A service with no endpoints yet; add them to a [`MicroService`] and [`Running::serving`].
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            micro: None,
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }

    /// Records the micro service whose endpoints this instance serves.
    pub fn serving(mut self, micro: MicroService) -> Self {
        self.micro = Some(micro);
        self
    }

    /// The token background tasks watch; cancelled at shutdown.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Runs a background task owned by this service; it must return soon after the stop token
    /// is cancelled.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Stops taking requests, lets in-flight ones finish within `grace`, then stops the
    /// background tasks (also within `grace`).
    pub async fn shutdown(self, grace: Duration) {
        if let Some(micro) = self.micro {
            micro.shutdown(grace).await;
        }
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                service = self.name,
                "background tasks outlived the shutdown grace"
            );
        }
    }
}
