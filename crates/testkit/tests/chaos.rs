//! The chaos proxy's toxics against a real server.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use redis_resilience_testkit::{ChaosProxy, Standalone};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

/// A connection without redis-rs' own response timeout, so the tests see
/// exactly what the proxy does.
async fn connect(proxy: &ChaosProxy) -> redis::RedisResult<MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(None)
        .set_connection_timeout(Some(Duration::from_secs(2)));
    redis::Client::open(proxy.url())?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

async fn timed_ping(conn: &mut MultiplexedConnection) -> redis::RedisResult<Duration> {
    let started = Instant::now();
    let _: String = redis::cmd("PING").query_async(conn).await?;
    Ok(started.elapsed())
}

/// Reads until EOF or an error; `true` when the peer closed or reset the
/// connection without sending a full PONG.
async fn closed_without_reply(stream: &mut TcpStream) -> bool {
    let mut buf = [0_u8; 64];
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return !got.starts_with(b"+PONG"),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_delays_each_round_trip() -> TestResult {
    let server = Standalone::start().await?;
    let proxy = ChaosProxy::start(server.addr()).await?;
    assert_eq!(proxy.upstream(), server.addr());
    let mut conn = connect(&proxy).await?;
    let baseline = timed_ping(&mut conn).await?;
    assert!(baseline < Duration::from_millis(150), "{baseline:?}");

    proxy.toxics().latency(Duration::from_millis(150));
    let delayed = timed_ping(&mut conn).await?;
    assert!(delayed >= Duration::from_millis(300), "{delayed:?}");
    assert!(delayed < Duration::from_secs(3), "{delayed:?}");

    proxy.toxics().clear();
    let cleared = timed_ping(&mut conn).await?;
    assert!(cleared < Duration::from_millis(150), "{cleared:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_makes_requests_time_out() -> TestResult {
    let server = Standalone::start().await?;
    let proxy = ChaosProxy::start(server.addr()).await?;
    let mut conn = connect(&proxy).await?;
    let () = conn.set("k", "v").await?;

    proxy.toxics().blackhole();
    assert!(proxy.toxics().toxics().blackhole);
    let silent = tokio::time::timeout(
        Duration::from_millis(300),
        conn.get::<_, Option<String>>("k"),
    )
    .await;
    assert!(
        silent.is_err(),
        "GET through a blackhole returned {silent:?}"
    );
    // New connections are accepted but hear nothing either.
    let mut raw = TcpStream::connect(proxy.socket_addr()).await?;
    raw.write_all(PING).await?;
    let mut buf = [0_u8; 16];
    let heard = tokio::time::timeout(Duration::from_millis(300), raw.read(&mut buf)).await;
    assert!(heard.is_err(), "a blackholed connection heard {heard:?}");

    proxy.toxics().clear();
    let mut fresh = connect(&proxy).await?;
    let value: Option<String> = fresh.get("k").await?;
    assert_eq!(value.as_deref(), Some("v"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_after_bytes_cuts_the_connection() -> TestResult {
    let server = Standalone::start().await?;
    let proxy = ChaosProxy::start(server.addr()).await?;
    let limit = 20;
    proxy.toxics().reset_after(limit);

    let mut stream = TcpStream::connect(proxy.socket_addr()).await?;
    // 14 bytes: under the limit, answered.
    stream.write_all(PING).await?;
    let mut pong = [0_u8; 7];
    stream.read_exact(&mut pong).await?;
    assert_eq!(&pong, b"+PONG\r\n");
    // The SET crosses the limit: only 6 more bytes reach the server, then the
    // connection is reset.
    stream
        .write_all(b"*3\r\n$3\r\nSET\r\n$5\r\nreset\r\n$10\r\n0123456789\r\n")
        .await?;
    assert!(closed_without_reply(&mut stream).await);
    let value: Option<String> = server.node().query(&["GET", "reset"]).await?;
    assert_eq!(value, None, "the truncated SET was executed");

    // redis-rs sees an error, not a hang (at connect already, when its
    // handshake crosses the limit).
    let big = "x".repeat(100);
    let result: redis::RedisResult<()> = async {
        let mut conn = connect(&proxy).await?;
        conn.set("big", &big).await
    }
    .await;
    assert!(
        result.is_err(),
        "a 100-byte SET passed a 20-byte reset toxic"
    );

    proxy.toxics().clear();
    let mut conn = connect(&proxy).await?;
    let () = conn.set("big", &big).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_closes_new_connections_only() -> TestResult {
    let server = Standalone::start().await?;
    let proxy = ChaosProxy::start(server.addr()).await?;
    let mut existing = connect(&proxy).await?;

    proxy.toxics().refuse();
    // The reset may beat the connect's completion; else no PONG comes back.
    if let Ok(mut refused) = TcpStream::connect(proxy.socket_addr()).await {
        let _ = refused.write_all(PING).await;
        assert!(closed_without_reply(&mut refused).await);
    }
    assert!(
        connect(&proxy).await.is_err(),
        "redis-rs connected through refuse"
    );
    // Connections made before go on.
    timed_ping(&mut existing).await?;

    proxy.toxics().clear();
    let mut fresh = connect(&proxy).await?;
    timed_ping(&mut fresh).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slice_forwards_small_pieces_intact() -> TestResult {
    let server = Standalone::start().await?;
    let proxy = ChaosProxy::start(server.addr()).await?;
    proxy.toxics().slice(3, Duration::from_micros(200));
    let mut conn = connect(&proxy).await?;
    let value = "0123456789".repeat(30);
    let () = conn.set("sliced", &value).await?;
    let back: String = conn.get("sliced").await?;
    assert_eq!(back, value);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_connections_drops_open_connections() -> TestResult {
    let server = Standalone::start().await?;
    let proxy = ChaosProxy::start(server.addr()).await?;
    let mut stream = TcpStream::connect(proxy.socket_addr()).await?;
    stream.write_all(PING).await?;
    let mut pong = [0_u8; 7];
    stream.read_exact(&mut pong).await?;
    proxy.toxics().reset_connections();
    stream.write_all(PING).await.ok();
    assert!(closed_without_reply(&mut stream).await);
    let mut fresh = connect(&proxy).await?;
    timed_ping(&mut fresh).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_proxy_closes_its_connections() -> TestResult {
    let server = Standalone::start().await?;
    let proxy = ChaosProxy::start(server.addr()).await?;
    let addr = proxy.socket_addr();
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(PING).await?;
    let mut pong = [0_u8; 7];
    stream.read_exact(&mut pong).await?;
    drop(proxy);
    let mut buf = [0_u8; 8];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await?;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener outlived the proxy"
    );
    Ok(())
}
