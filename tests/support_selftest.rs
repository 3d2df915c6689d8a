//! The test harness's own tests: each helper in `support` does what the suite relies on.

#![expect(
    clippy::expect_used,
    reason = "a test should stop loudly at any unexpected error"
)]

#[path = "support.rs"]
mod support;

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt as _;
use sqlx::{Connection as _, PgConnection};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use support::nats::NatsServer;
use support::net::{TcpProxy, free_port};
use support::postgres::fresh_database;
use support::wait::until;

const DEADLINE: Duration = Duration::from_secs(20);

#[test]
fn free_port_never_hands_out_the_same_port_twice() {
    let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
    let distinct: HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(distinct.len(), ports.len());
    assert!(ports.iter().all(|&port| port != 0));
}

#[tokio::test]
async fn until_returns_the_value_once_the_condition_holds() {
    let mut calls = 0;
    let value = until("the third call", DEADLINE, || {
        calls += 1;
        let now = calls;
        async move { (now >= 3).then_some(now * 10) }
    })
    .await;
    assert_eq!(value, 30);
}

#[tokio::test]
#[should_panic(expected = "waiting for a condition that never holds")]
async fn until_panics_naming_what_it_waited_for() {
    until(
        "a condition that never holds",
        Duration::from_millis(100),
        || async { None::<()> },
    )
    .await;
}

#[tokio::test]
#[should_panic(expected = "waiting for a call that hangs")]
async fn until_gives_up_on_a_call_that_hangs_past_the_deadline() {
    until("a call that hangs", Duration::from_millis(100), || {
        futures::future::pending::<Option<()>>()
    })
    .await;
}

async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = listener.local_addr().expect("echo addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

async fn echo_once(stream: &mut TcpStream, message: &[u8]) -> Vec<u8> {
    stream.write_all(message).await.expect("write");
    let mut reply = vec![0; message.len()];
    stream.read_exact(&mut reply).await.expect("read");
    reply
}

#[tokio::test]
async fn tcp_proxy_forwards_both_ways_and_cuts_and_restores_the_link() {
    let proxy = TcpProxy::start(echo_server().await);
    let mut first = TcpStream::connect(proxy.addr()).await.expect("connect");
    assert_eq!(echo_once(&mut first, b"hello").await, b"hello");
    assert_eq!(proxy.live_connections(), 1);

    proxy.cut();
    assert!(proxy.is_cut());
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(DEADLINE, first.read(&mut buf))
        .await
        .expect("a cut connection is closed, not left hanging");
    assert!(matches!(read, Ok(0) | Err(_)), "got {read:?}");

    // While cut, a new connection is turned away before any byte goes through.
    if let Ok(mut refused) = TcpStream::connect(proxy.addr()).await {
        let _ = refused.write_all(b"x").await;
        let read = tokio::time::timeout(DEADLINE, refused.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0) | Err(_))), "got {read:?}");
    }

    proxy.restore();
    let mut second = TcpStream::connect(proxy.addr()).await.expect("reconnect");
    assert_eq!(echo_once(&mut second, b"again").await, b"again");
}

#[tokio::test]
async fn nats_server_starts_on_its_own_port_and_carries_messages() {
    let server = NatsServer::start().await;
    assert_ne!(server.port(), 4222);
    assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));
    let client = async_nats::connect(server.url()).await.expect("connect");
    let mut subscription = client.subscribe("selftest.ping").await.expect("subscribe");
    client.flush().await.expect("flush");
    client
        .publish("selftest.ping", "hi".into())
        .await
        .expect("publish");
    let message = tokio::time::timeout(DEADLINE, subscription.next())
        .await
        .expect("message in time")
        .expect("subscription open");
    assert_eq!(message.payload.as_ref(), b"hi");
    assert!(server.log().contains("Server is ready"), "{}", server.log());
}

#[tokio::test]
async fn nats_server_has_jetstream_enabled() {
    let server = NatsServer::start().await;
    let client = async_nats::connect(server.url()).await.expect("connect");
    let jetstream = async_nats::jetstream::new(client);
    jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: "SELFTEST".into(),
            subjects: vec!["selftest.js".into()],
            ..Default::default()
        })
        .await
        .expect("JetStream answers");
}

#[tokio::test]
async fn nats_server_with_a_config_file_ignores_its_port_line() {
    let server = NatsServer::start_with_config("port: 4222\nmax_payload: 65536\n").await;
    assert_ne!(server.port(), 4222);
    let client = async_nats::connect(server.url()).await.expect("connect");
    assert_eq!(client.server_info().max_payload, 65536);
}

#[tokio::test]
#[should_panic(expected = "nats-server exited at start")]
async fn nats_server_with_a_broken_config_file_fails_with_its_log() {
    NatsServer::start_with_config("this is { not a config").await;
}

#[tokio::test]
async fn a_client_through_a_cut_proxy_reconnects_once_it_is_restored() {
    let server = NatsServer::start().await;
    let proxy = TcpProxy::start(server.addr());
    let cut_off = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(format!("nats://{}", proxy.addr()))
        .await
        .expect("connect through the proxy");
    let direct = async_nats::connect(server.url())
        .await
        .expect("connect directly");
    let mut subscription = direct
        .subscribe("selftest.through")
        .await
        .expect("subscribe");
    direct.flush().await.expect("flush");

    proxy.cut();
    until("the proxied client to notice the cut", DEADLINE, || async {
        (cut_off.connection_state() != async_nats::connection::State::Connected).then_some(())
    })
    .await;
    // The direct client is unaffected.
    direct
        .publish("selftest.through", "direct".into())
        .await
        .expect("publish");
    let message = tokio::time::timeout(DEADLINE, subscription.next())
        .await
        .expect("in time");
    assert_eq!(message.expect("open").payload.as_ref(), b"direct");

    proxy.restore();
    until("the proxied client to reconnect", DEADLINE, || async {
        (cut_off.connection_state() == async_nats::connection::State::Connected).then_some(())
    })
    .await;
    cut_off
        .publish("selftest.through", "proxied".into())
        .await
        .expect("publish");
    cut_off.flush().await.expect("flush");
    let message = tokio::time::timeout(DEADLINE, subscription.next())
        .await
        .expect("in time");
    assert_eq!(message.expect("open").payload.as_ref(), b"proxied");
}

#[tokio::test]
async fn a_killed_nats_server_restarts_on_the_same_port_and_keeps_its_streams() {
    let mut server = NatsServer::start().await;
    let port = server.port();
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(server.url())
        .await
        .expect("connect");
    let jetstream = async_nats::jetstream::new(client.clone());
    jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: "DURABLE".into(),
            subjects: vec!["selftest.durable".into()],
            ..Default::default()
        })
        .await
        .expect("create stream");
    jetstream
        .publish("selftest.durable", "kept".into())
        .await
        .expect("publish")
        .await
        .expect("stored");

    server.kill();
    assert!(!server.is_running());
    until("the client to notice the server died", DEADLINE, || async {
        (client.connection_state() != async_nats::connection::State::Connected).then_some(())
    })
    .await;

    server.restart().await;
    assert_eq!(server.port(), port);
    assert!(server.is_running());
    until(
        "the client to reconnect after the restart",
        DEADLINE,
        || async {
            (client.connection_state() == async_nats::connection::State::Connected).then_some(())
        },
    )
    .await;
    let mut stream = jetstream
        .get_stream("DURABLE")
        .await
        .expect("stream survived");
    assert_eq!(stream.info().await.expect("info").state.messages, 1);
}

#[tokio::test]
async fn fresh_database_returns_distinct_empty_databases_that_accept_tables() {
    let (first, second) = tokio::join!(fresh_database(), fresh_database());
    assert_ne!(first, second);
    for url in [&first, &second] {
        assert!(url.starts_with("postgres://postgres@127.0.0.1:"), "{url}");
        let mut connection = PgConnection::connect(url).await.expect("connect");
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .fetch_one(&mut connection)
        .await
        .expect("count tables");
        assert_eq!(tables, 0);
        sqlx::raw_sql("CREATE TABLE t (id BIGINT PRIMARY KEY)")
            .execute(&mut connection)
            .await
            .expect("create table");
    }
}

/// Each `#[tokio::test]` has its own runtime: the shared cluster must survive the runtime that
/// started it, and concurrent first calls must start it once.
#[test]
fn fresh_database_works_from_many_runtimes_at_once() {
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(async {
                        let url = fresh_database().await;
                        let mut connection = PgConnection::connect(&url).await.expect("connect");
                        sqlx::raw_sql("SELECT 1")
                            .execute(&mut connection)
                            .await
                            .expect("query");
                        url
                    })
            })
        })
        .collect();
    let urls: HashSet<String> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    assert_eq!(urls.len(), 4);
    let ports: HashSet<&str> = urls
        .iter()
        .map(|u| u.rsplit_once('/').expect("path").0)
        .collect();
    assert_eq!(
        ports.len(),
        1,
        "one cluster for the whole process: {urls:?}"
    );
}
