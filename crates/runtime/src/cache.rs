//! A read-through cache kept honest by events: entries are dropped when an event says they
//! changed, and everything is dropped when the NATS connection blinks (events may have been
//! missed meanwhile). A generation counter makes sure a value read before an invalidation is
//! not stored after it, so a slow read never resurrects what an event just dropped.
//!
//! The typical use: take a [`EventCache::ticket`], read the value from its source, then
//! [`EventCache::insert`] it with the ticket.

use carehub_bus::{Bus, ConnectionEvent};
use moka::future::Cache;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// A moka cache plus the generation guard. Cheap to clone.
#[derive(Clone)]
pub struct EventCache<K, V> {
    cache: Cache<K, V>,
    generation: Arc<AtomicU64>,
}

/// Proof of when a read started; see [`EventCache::insert`].
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

impl<K, V> EventCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Wraps a configured moka cache (capacity, time to live or a custom expiry).
    pub fn new(cache: Cache<K, V>) -> Self {
        Self {
            cache,
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The cached value, if any.
    pub async fn get(&self, key: &K) -> Option<V> {
        self.cache.get(key).await
    }

    /// Taken before reading a value from its source.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::SeqCst))
    }

    /// Stores a value read after `ticket` was taken, unless something was invalidated since.
    pub async fn insert(&self, ticket: Ticket, key: K, value: V) {
        if self.generation.load(Ordering::SeqCst) != ticket.0 {
            return;
        }
        self.cache.insert(key.clone(), value).await;
        // An invalidation that started after the check above sees this entry; one that started
        // before it is caught here.
        if self.generation.load(Ordering::SeqCst) != ticket.0 {
            self.cache.invalidate(&key).await;
        }
    }

    /// Drops one entry.
    pub async fn invalidate(&self, key: &K) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate(key).await;
    }

    /// Drops every entry whose value matches.
    pub async fn invalidate_where(&self, matches: impl Fn(&V) -> bool) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let doomed: Vec<Arc<K>> = self
            .cache
            .iter()
            .filter(|(_, v)| matches(v))
            .map(|(k, _)| k)
            .collect();
        for k in doomed {
            self.cache.invalidate(&*k).await;
        }
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate_all();
    }

    /// How many entries are cached (after pending maintenance).
    pub async fn len(&self) -> u64 {
        self.cache.run_pending_tasks().await;
        self.cache.entry_count()
    }

    /// Whether nothing is cached (after pending maintenance).
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }

    /// A future that clears the cache on every disconnect and reconnect of `bus`, until `stop`.
    pub fn watch_connection(
        &self,
        bus: &Bus,
        stop: CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static + use<K, V> {
        let mut events = bus.connection_events();
        let this = self.clone();
        async move {
            loop {
                let event = tokio::select! {
                    () = stop.cancelled() => break,
                    e = events.recv() => e,
                };
                match event {
                    Ok(ConnectionEvent::Connected | ConnectionEvent::Disconnected)
                    | Err(RecvError::Lagged(_)) => this.clear(),
                    Err(RecvError::Closed) => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> EventCache<String, u32> {
        EventCache::new(Cache::builder().max_capacity(100).build())
    }

    #[tokio::test]
    async fn a_read_that_raced_an_invalidation_is_not_stored() {
        let c = cache();
        let ticket = c.ticket();
        c.invalidate(&"a".to_owned()).await;
        c.insert(ticket, "a".to_owned(), 1).await;
        assert_eq!(c.get(&"a".to_owned()).await, None);
        let fresh = c.ticket();
        c.insert(fresh, "a".to_owned(), 2).await;
        assert_eq!(c.get(&"a".to_owned()).await, Some(2));
    }

    #[tokio::test]
    async fn invalidation_drops_only_what_it_names() {
        let c = cache();
        for (k, v) in [("a", 1), ("b", 2), ("c", 3)] {
            c.insert(c.ticket(), k.to_owned(), v).await;
        }
        c.invalidate(&"a".to_owned()).await;
        c.invalidate_where(|v| *v == 3).await;
        assert_eq!(c.get(&"a".to_owned()).await, None);
        assert_eq!(c.get(&"b".to_owned()).await, Some(2));
        assert_eq!(c.get(&"c".to_owned()).await, None);
        c.clear();
        assert!(c.is_empty().await);
    }
}
