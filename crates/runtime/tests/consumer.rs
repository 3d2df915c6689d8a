//! `carehub_runtime::consumer` against a real nats-server (started per test on a free port,
//! never the machine's own): undecodable events are terminated and counted without blocking
//! the next one, failed ones are retried with back-off until they apply or run out of
//! deliveries, and a durable left by an earlier release keeps its position.

#![expect(
    clippy::expect_used,
    reason = "test code: a failed expectation is a failed test"
)]

use async_nats::jetstream::{self, consumer::pull, stream};
use carehub_runtime::consumer::{self, Durable, MAX_DELIVER, Retry};
use futures::StreamExt as _;
use serde::Deserialize;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Every wait gives up after this long; nothing asserts how fast anything happens.
const DEADLINE: Duration = Duration::from_secs(20);

/// A private `nats-server -js` on a free port, from the one launcher; killed and its store
/// removed on drop.
struct Nats {
    child: carehub_natsd::ChildNats,
}

impl Nats {
    async fn start() -> Self {
        // The recorder must be there before a consumer counts anything.
        carehub_runtime::metrics::install().expect("the metrics recorder");
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "carehub-consumer-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        let child = carehub_natsd::Launch::plain(&dir)
            .start()
            .await
            .expect("nats-server runs");
        Self { child }
    }

    async fn client(&self) -> async_nats::Client {
        async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(self.child.url())
            .await
            .expect("connect")
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.child.kill();
        let _ = std::fs::remove_dir_all(self.child.dir());
    }
}

/// Polls `f` every 20 ms until it returns `Some`; panics naming `what` after [`DEADLINE`].
async fn until<F, Fut, T>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let give_up = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Ok(Some(v)) = tokio::time::timeout_at(give_up, f()).await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Debug, Deserialize)]
struct Event {
    n: u32,
}

async fn stream(js: &jetstream::Context, name: &str, subjects: &str) -> stream::Stream {
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![subjects.into()],
        ..Default::default()
    })
    .await
    .expect("create the stream")
}

async fn publish(js: &jetstream::Context, subject: &str, payload: &str) {
    js.publish(subject.to_owned(), payload.to_owned().into())
        .await
        .expect("publish")
        .await
        .expect("stored");
}

/// What `apply` saw, in order, and a switch to make it fail.
#[derive(Clone, Default)]
struct Log {
    /// Every call, in order: (n, whether it was applied).
    calls: Arc<Mutex<Vec<(u32, bool)>>>,
}

impl Log {
    fn calls(&self) -> Vec<(u32, bool)> {
        self.calls.lock().expect("log lock").clone()
    }

    fn applied(&self) -> Vec<u32> {
        self.calls()
            .into_iter()
            .filter_map(|(n, ok)| ok.then_some(n))
            .collect()
    }

    /// Runs the consumer; `fails(n, attempt)` says whether the `attempt`-th (1-based) call
    /// for event `n` fails.
    fn spawn(
        &self,
        js: &jetstream::Context,
        durable: Durable,
        stop: &CancellationToken,
        fails: fn(u32, usize) -> bool,
    ) -> tokio::task::JoinHandle<()> {
        let log = self.clone();
        tokio::spawn(consumer::run(
            js.clone(),
            durable,
            stop.clone(),
            move |e: Event| {
                let log = log.clone();
                async move {
                    let mut calls = log.calls.lock().expect("log lock");
                    let attempt = calls.iter().filter(|(n, _)| *n == e.n).count() + 1;
                    let fail = fails(e.n, attempt);
                    calls.push((e.n, !fail));
                    if fail {
                        Err(format!("event {} failed on attempt {attempt}", e.n))
                    } else {
                        Ok(())
                    }
                }
            },
        ))
    }
}

fn quick_retry(max_deliver: i64) -> Retry {
    Retry {
        max_deliver,
        first_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(400),
    }
}

/// The value of `name{component="test",consumer="<consumer>"}` in the Prometheus text.
fn counter(name: &str, consumer: &str) -> Option<f64> {
    let text = carehub_runtime::metrics::install()
        .expect("the metrics recorder")
        .render();
    let labels = format!("{{component=\"test\",consumer=\"{consumer}\"}}");
    text.lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter_map(|l| l.strip_prefix(labels.as_str()))
        .find_map(|v| v.trim().parse().ok())
}

/// Collects the stream sequences of `$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED` advisories.
async fn terminations(
    client: &async_nats::Client,
    stream: &str,
    consumer: &str,
) -> Arc<Mutex<Vec<u64>>> {
    let mut sub = client
        .subscribe(format!(
            "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{stream}.{consumer}"
        ))
        .await
        .expect("subscribe to advisories");
    client.flush().await.expect("flush");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let into = seen.clone();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let v: serde_json::Value = serde_json::from_slice(&m.payload).expect("advisory JSON");
            let seq = v["stream_seq"].as_u64().expect("stream_seq");
            into.lock().expect("advisory lock").push(seq);
        }
    });
    seen
}

async fn stops(handle: tokio::task::JoinHandle<()>, stop: &CancellationToken) {
    stop.cancel();
    tokio::time::timeout(DEADLINE, handle)
        .await
        .expect("the consumer stops on its token")
        .expect("the consumer task did not panic");
}

async fn info(s: &stream::Stream, name: &str) -> jetstream::consumer::Info {
    s.consumer_info(name).await.expect("consumer info")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_event_is_terminated_counted_and_does_not_block_the_next() {
    let nats = Nats::start().await;
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    let s = stream(&js, "T_UNDECODABLE", "t.undecodable.>").await;
    let terminated = terminations(&client, "T_UNDECODABLE", "t-undecodable").await;
    publish(&js, "t.undecodable.x", "not json").await;
    publish(&js, "t.undecodable.x", r#"{"n":2}"#).await;

    let log = Log::default();
    let stop = CancellationToken::new();
    // In order (one event in flight): the undecodable one must not hold up the next.
    let durable = Durable::new("test", "T_UNDECODABLE", "t-undecodable")
        .filter("t.undecodable.>")
        .in_order();
    let handle = log.spawn(&js, durable, &stop, |_, _| false);

    until("the event after the undecodable one to apply", || async {
        (log.applied() == [2]).then_some(())
    })
    .await;
    until("the undecodable event's termination advisory", || async {
        (terminated.lock().expect("advisory lock").as_slice() == [1]).then_some(())
    })
    .await;
    until("the consumer to have acknowledged both", || async {
        let i = info(&s, "t-undecodable").await;
        (i.ack_floor.stream_sequence == 2 && i.num_ack_pending == 0).then_some(())
    })
    .await;
    assert_eq!(
        counter("carehub_events_undecodable_total", "t-undecodable"),
        Some(1.0)
    );
    assert_eq!(
        log.calls(),
        [(2, true)],
        "apply never saw the undecodable one"
    );
    stops(handle, &stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_apply_is_delivered_again_and_applied_once_it_succeeds() {
    let nats = Nats::start().await;
    let js = jetstream::new(nats.client().await);
    let s = stream(&js, "T_RETRY", "t.retry.>").await;
    publish(&js, "t.retry.x", r#"{"n":1}"#).await;
    publish(&js, "t.retry.x", r#"{"n":2}"#).await;

    let log = Log::default();
    let stop = CancellationToken::new();
    let durable = Durable::new("test", "T_RETRY", "t-retry")
        .filter("t.retry.>")
        .in_order()
        .retry(quick_retry(5));
    // Event 1 fails twice, then applies.
    let handle = log.spawn(&js, durable, &stop, |n, attempt| n == 1 && attempt <= 2);

    until("both events to apply", || async {
        (log.applied() == [1, 2]).then_some(())
    })
    .await;
    // In order: event 2 waited for event 1's retries.
    assert_eq!(log.calls(), [(1, false), (1, false), (1, true), (2, true)]);
    until("the consumer to have acknowledged both", || async {
        let i = info(&s, "t-retry").await;
        (i.ack_floor.stream_sequence == 2 && i.num_ack_pending == 0).then_some(())
    })
    .await;
    assert_eq!(
        counter("carehub_events_retries_exhausted_total", "t-retry"),
        None
    );
    stops(handle, &stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_failing_on_its_last_delivery_is_terminated_and_the_next_applies() {
    let nats = Nats::start().await;
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    let s = stream(&js, "T_EXHAUSTED", "t.exhausted.>").await;
    let terminated = terminations(&client, "T_EXHAUSTED", "t-exhausted").await;
    publish(&js, "t.exhausted.x", r#"{"n":1}"#).await;
    publish(&js, "t.exhausted.x", r#"{"n":2}"#).await;

    let log = Log::default();
    let stop = CancellationToken::new();
    let durable = Durable::new("test", "T_EXHAUSTED", "t-exhausted")
        .filter("t.exhausted.>")
        .in_order()
        .retry(quick_retry(3));
    let handle = log.spawn(&js, durable, &stop, |n, _| n == 1);

    until("the event after the failing one to apply", || async {
        (log.applied() == [2]).then_some(())
    })
    .await;
    assert_eq!(log.calls(), [(1, false), (1, false), (1, false), (2, true)]);
    until("the failing event's termination advisory", || async {
        (terminated.lock().expect("advisory lock").as_slice() == [1]).then_some(())
    })
    .await;
    let i = info(&s, "t-exhausted").await;
    assert_eq!(i.config.max_deliver, 3);
    assert_eq!(
        counter("carehub_events_retries_exhausted_total", "t-exhausted"),
        Some(1.0)
    );
    stops(handle, &stop).await;
}

/// A durable as the previous release created it (`get_or_create_consumer`, no `max_deliver`),
/// two of three events acknowledged; the new code must go on at the third.
async fn an_old_durable_keeps_its_position(
    stream_name: &str,
    name: &str,
    filter: &str,
    max_ack_pending: i64,
) {
    let nats = Nats::start().await;
    let js = jetstream::new(nats.client().await);
    let subject = format!("{}.x", stream_name.to_ascii_lowercase());
    let s = stream(
        &js,
        stream_name,
        &format!("{}.>", stream_name.to_ascii_lowercase()),
    )
    .await;
    let old = pull::Config {
        durable_name: Some(name.into()),
        filter_subject: filter.into(),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        max_ack_pending,
        ..Default::default()
    };
    let old_consumer = s
        .get_or_create_consumer(name, old)
        .await
        .expect("the old release's durable");
    for n in 1..=3 {
        publish(&js, &subject, &format!(r#"{{"n":{n}}}"#)).await;
    }
    let mut batch = old_consumer
        .fetch()
        .max_messages(2)
        .messages()
        .await
        .expect("fetch");
    let mut acked = 0;
    while let Some(m) = batch.next().await {
        m.expect("message").double_ack().await.expect("ack");
        acked += 1;
    }
    assert_eq!(acked, 2);
    let before = info(&s, name).await;
    assert_eq!(before.ack_floor.stream_sequence, 2);
    assert_eq!(
        before.config.max_deliver, -1,
        "the old durable has no limit"
    );

    let log = Log::default();
    let stop = CancellationToken::new();
    let mut durable = Durable::new("test", stream_name, name).filter(filter);
    if max_ack_pending == 1 {
        durable = durable.in_order();
    }
    let handle = log.spawn(&js, durable, &stop, |_, _| false);
    until("the third event to apply", || async {
        (!log.applied().is_empty()).then_some(())
    })
    .await;
    publish(&js, &subject, r#"{"n":4}"#).await;
    until("the fourth event to apply", || async {
        (log.applied().len() >= 2).then_some(())
    })
    .await;
    assert_eq!(log.applied(), [3, 4], "no replay of acknowledged events");

    let after = info(&s, name).await;
    assert_eq!(
        after.config.max_deliver, MAX_DELIVER,
        "the update reached the durable"
    );
    assert_eq!(after.config.durable_name.as_deref(), Some(name));
    assert_eq!(after.config.filter_subject, filter);
    assert_eq!(after.config.max_ack_pending, before.config.max_ack_pending);
    assert_eq!(after.created, before.created, "updated, not re-created");
    until("the consumer to have acknowledged all four", || async {
        (info(&s, name).await.ack_floor.stream_sequence == 4).then_some(())
    })
    .await;
    stops(handle, &stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_filtered_durable_keeps_its_position() {
    // As admin's and patient's durables were created.
    an_old_durable_keeps_its_position("T_OLD_FILTERED", "t-old-filtered", "t_old_filtered.>", 0)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_in_order_durable_keeps_its_position() {
    // As the doctor service's durable was created.
    an_old_durable_keeps_its_position("T_OLD_ORDERED", "t-old-ordered", "t_old_ordered.>", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_unfiltered_durable_keeps_its_position() {
    // As notify's durables were created (the whole stream).
    an_old_durable_keeps_its_position("T_OLD_WHOLE", "t-old-whole", "", 0).await;
}
