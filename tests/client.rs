//! `Client`: redis-rs's `AsyncCommands`, pipelines and transactions over a
//! `RedisService`, against a real server.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis_resilience::{Client, ErrorKind, RedisService, Request, ServedBy};
use redis_resilience_testkit::Standalone;

async fn start() -> (Standalone, Client<RedisService>) {
    let server = Standalone::start()
        .await
        .unwrap_or_else(|err| panic!("cannot start redis-server: {err}"));
    let redis = RedisService::standalone(&server.url())
        .await
        .expect("connect");
    (server, Client::new(redis))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_commands_pipelines_and_transactions_work_over_the_service() {
    let (_server, mut client) = start().await;

    let () = client.set("user:42:name", "Ada").await.expect("SET");
    let name: Option<String> = client.get("user:42:name").await.expect("GET");
    assert_eq!(name.as_deref(), Some("Ada"));
    let missing: Option<String> = client.get("nope").await.expect("GET missing");
    assert_eq!(missing, None);
    let n: i64 = client.incr("n", 5).await.expect("INCRBY");
    assert_eq!(n, 5);

    let (a, b): (i64, String) = redis::pipe()
        .incr("n", 1)
        .get("user:42:name")
        .query_async(&mut client)
        .await
        .expect("pipeline");
    assert_eq!((a, b.as_str()), (6, "Ada"));

    let (x, y): (i64, i64) = redis::pipe()
        .atomic()
        .incr("tx", 1)
        .ignore()
        .incr("tx", 1)
        .incr("tx", 1)
        .query_async(&mut client)
        .await
        .expect("transaction");
    assert_eq!((x, y), (2, 3));

    let typed: i64 = client
        .query(redis::cmd("INCR").arg("n"))
        .await
        .expect("typed");
    assert_eq!(typed, 7);
    let response = client
        .send(Request::new(redis::cmd("GET").arg("n").clone()).authoritative())
        .await
        .expect("send");
    assert!(matches!(response.served_by, ServedBy::Primary(Some(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_keep_what_redis_rs_users_test_for() {
    let (server, client) = start().await;
    let mut client = client.with_default_timeout(Duration::from_millis(200));

    let () = client.set("s", "v").await.expect("SET");
    let err = client
        .lpush::<_, _, i64>("s", "x")
        .await
        .expect_err("WRONGTYPE");
    assert_eq!(err.code(), Some("WRONGTYPE"), "{err}");

    let err = client
        .query::<String>(redis::cmd("LPUSH").arg("s").arg("x"))
        .await
        .expect_err("typed WRONGTYPE");
    assert_eq!(err.kind(), &ErrorKind::WrongType);
    let err = client
        .query::<i64>(redis::cmd("GET").arg("s"))
        .await
        .expect_err("a string is not a number");
    assert_eq!(err.kind(), &ErrorKind::Protocol);

    // The client's default deadline bounds every request.
    server.node().pause().expect("pause");
    let started = Instant::now();
    let err = client
        .get::<_, Option<String>>("s")
        .await
        .expect_err("paused");
    let waited = started.elapsed();
    server.node().resume().expect("resume");
    assert!(err.is_timeout(), "{err}");
    assert!(waited < Duration::from_millis(700), "waited {waited:?}");
}
