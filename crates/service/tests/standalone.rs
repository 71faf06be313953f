//! RedisService against a real standalone redis-server: round trips, a killed
//! and restarted server, a paused server, AUTH and bad input.

use std::time::{Duration, Instant};

use redis::Value;
use redis_resilience_core::{ErrorKind, NodeAddr, ReadFrom, Request, Route, Sent, ServedBy};
use redis_resilience_service::{Credentials, RedisService};
use redis_resilience_testkit::Standalone;
use tower::ServiceExt;

async fn start() -> Standalone {
    Standalone::start()
        .await
        .unwrap_or_else(|err| panic!("cannot start redis-server: {err}"))
}

async fn call(
    redis: &RedisService,
    request: Request,
) -> Result<redis_resilience_core::Response, redis_resilience_core::Error> {
    redis.clone().oneshot(request).await
}

fn cmd(args: &[&str]) -> Request {
    let mut cmd = redis::Cmd::new();
    for arg in args {
        cmd.arg(*arg);
    }
    Request::new(cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_commands_pipelines_and_transactions() {
    let server = start().await;
    let redis = RedisService::standalone(&server.url())
        .await
        .expect("connect");
    let addr = NodeAddr::parse(server.addr()).expect("addr");

    let set = call(&redis, cmd(&["SET", "k", "v"])).await.expect("SET");
    assert_eq!(set.value, Value::Okay);
    assert_eq!(set.served_by, ServedBy::Primary(Some(addr.clone())));
    let get = call(&redis, cmd(&["GET", "k"])).await.expect("GET");
    assert_eq!(get.value, Value::BulkString(b"v".to_vec()));

    let mut pipe = redis::pipe();
    pipe.cmd("INCR")
        .arg("n")
        .cmd("INCR")
        .arg("n")
        .cmd("GET")
        .arg("n");
    let replies = call(&redis, Request::pipeline(pipe))
        .await
        .expect("pipeline");
    assert_eq!(
        replies.value,
        Value::Array(vec![
            Value::Int(1),
            Value::Int(2),
            Value::BulkString(b"2".to_vec())
        ])
    );

    let mut tx = redis::pipe();
    tx.atomic()
        .cmd("SET")
        .arg("a")
        .arg("1")
        .cmd("INCR")
        .arg("a");
    let exec = call(&redis, Request::pipeline(tx))
        .await
        .expect("transaction");
    assert_eq!(
        exec.value,
        Value::Array(vec![Value::Array(vec![Value::Okay, Value::Int(2)])])
    );

    // A server error is parsed, with Sent::Yes.
    let err = call(&redis, cmd(&["LPUSH", "k", "x"]))
        .await
        .expect_err("WRONGTYPE");
    assert_eq!(err.kind(), &ErrorKind::WrongType);
    assert_eq!(err.sent(), Sent::Yes);
    let err = call(&redis, cmd(&["NOSUCHCOMMAND"]))
        .await
        .expect_err("unknown command");
    assert_eq!(err.kind(), &ErrorKind::Server { code: "ERR".into() });

    // A standalone server has no replicas and no other nodes.
    let err = call(
        &redis,
        cmd(&["GET", "k"]).with_route(Route::Replica(ReadFrom::LowestLag)),
    )
    .await
    .expect_err("no replica");
    assert_eq!(err.kind(), &ErrorKind::NoReplicaAvailable);
    assert_eq!(err.sent(), Sent::No);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_fails_fast_and_the_same_service_recovers_after_restart() {
    let server = start().await;
    let redis = RedisService::builder()
        .connect_timeout(Duration::from_millis(500))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .standalone(&server.url())
        .await
        .expect("connect");
    call(&redis, cmd(&["SET", "k", "v"])).await.expect("SET");

    server.node().kill().expect("kill");
    // The first request may be in flight when the connection drops (Sent::Maybe);
    // after that, every request fails before anything is sent, and fast.
    let mut saw_connect_error = false;
    for _ in 0..50 {
        let started = Instant::now();
        let err = call(&redis, cmd(&["GET", "k"]))
            .await
            .expect_err("server is dead");
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "a request hung for {:?}: {err}",
            started.elapsed()
        );
        if err.kind() == &ErrorKind::Connect {
            assert_eq!(err.sent(), Sent::No, "{err}");
            saw_connect_error = true;
        } else {
            assert!(
                matches!(err.kind(), ErrorKind::Io | ErrorKind::Timeout),
                "unexpected {err:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(saw_connect_error, "never saw a Sent::No connect error");

    server.node().restart().await.expect("restart");
    let started = Instant::now();
    loop {
        match call(&redis, cmd(&["SET", "k", "back"])).await {
            Ok(response) => {
                assert_eq!(response.value, Value::Okay);
                break;
            }
            Err(err) => {
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "not recovered 5 s after the restart: {err}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let get = call(&redis, cmd(&["GET", "k"]))
        .await
        .expect("GET after recovery");
    assert_eq!(get.value, Value::BulkString(b"back".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_server_times_out_at_the_deadline_and_recovers_on_resume() {
    let server = start().await;
    let redis = RedisService::standalone(server.addr())
        .await
        .expect("connect");
    call(&redis, cmd(&["SET", "k", "v"])).await.expect("SET");

    server.node().pause().expect("pause");
    let started = Instant::now();
    let deadline = Instant::now() + Duration::from_millis(300);
    let err = call(&redis, cmd(&["GET", "k"]).with_deadline(deadline))
        .await
        .expect_err("paused");
    let waited = started.elapsed();
    server.node().resume().expect("resume");
    assert_eq!(err.kind(), &ErrorKind::Timeout, "{err}");
    assert_eq!(err.sent(), Sent::Maybe);
    assert!(
        waited >= Duration::from_millis(290) && waited < Duration::from_millis(900),
        "timed out after {waited:?}, deadline was 300 ms"
    );
    // A deadline already passed: refused before sending.
    let err = call(&redis, cmd(&["GET", "k"]).with_deadline(Instant::now()))
        .await
        .expect_err("deadline passed");
    assert_eq!((err.kind(), err.sent()), (&ErrorKind::Timeout, Sent::No));

    let get = call(&redis, cmd(&["GET", "k"]))
        .await
        .expect("GET after resume");
    assert_eq!(get.value, Value::BulkString(b"v".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_with_password_and_acl_user() {
    let server = Standalone::builder()
        .password("s3cret")
        .start()
        .await
        .unwrap_or_else(|err| panic!("cannot start redis-server: {err}"));
    let setuser: String = server
        .node()
        .query(&[
            "ACL",
            "SETUSER",
            "app",
            "on",
            ">app-pass",
            "~app:*",
            "+@all",
        ])
        .await
        .expect("ACL SETUSER");
    assert_eq!(setuser, "OK");

    let by_password = RedisService::builder()
        .credentials(Credentials::password("s3cret"))
        .standalone(server.addr())
        .await
        .expect("password");
    call(&by_password, cmd(&["SET", "k", "v"]))
        .await
        .expect("SET");

    let url = format!("redis://app:app-pass@{}", server.addr());
    let by_user = RedisService::standalone(&url).await.expect("ACL user");
    call(&by_user, cmd(&["SET", "app:k", "v"]))
        .await
        .expect("SET own key");
    let err = call(&by_user, cmd(&["GET", "other"]))
        .await
        .expect_err("NOPERM");
    assert_eq!(
        err.kind(),
        &ErrorKind::Server {
            code: "NOPERM".into()
        }
    );

    for wrong in [
        RedisService::builder().credentials(Credentials::password("wrong")),
        RedisService::builder().credentials(Credentials::user("app", "wrong")),
        RedisService::builder(),
    ] {
        let started = Instant::now();
        let err = wrong
            .standalone(server.addr())
            .await
            .expect_err("wrong credentials");
        assert!(started.elapsed() < Duration::from_secs(2), "{err}");
        assert_eq!(err.kind(), &ErrorKind::Auth, "{err}");
        assert!(!err.to_string().contains("wrong"), "password leaked: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_error_never_a_panic_or_a_hang() {
    for bad in [
        "",
        "localhost",
        "localhost:99999",
        "redis://[::1",
        "unix:///tmp/redis.sock",
        "ftp://x:1",
    ] {
        let err = RedisService::standalone(bad).await.expect_err(bad);
        assert_eq!(err.kind(), &ErrorKind::Config, "{bad:?}: {err}");
    }
    // Nothing listens there (a reserved, unused port): Connect within the connect timeout.
    let port = redis_resilience_testkit::reserve_port().expect("port");
    let started = Instant::now();
    let err = RedisService::builder()
        .connect_timeout(Duration::from_millis(300))
        .standalone(&format!("127.0.0.1:{}", port.port()))
        .await
        .expect_err("nothing listens");
    assert_eq!(
        (err.kind(), err.sent()),
        (&ErrorKind::Connect, Sent::No),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));

    // TLS needs the `tls` feature; without it, a clear refusal.
    #[cfg(not(feature = "tls"))]
    {
        let err = RedisService::standalone("rediss://127.0.0.1:6379")
            .await
            .expect_err("no tls feature");
        assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
        assert!(err.to_string().to_lowercase().contains("tls"), "{err}");
    }

    // Absurd configuration.
    for builder in [
        RedisService::builder().connect_timeout(Duration::ZERO),
        RedisService::builder().response_timeout(Duration::from_secs(u64::MAX / 4)),
        RedisService::builder().reconnect_backoff(Duration::from_secs(2), Duration::from_millis(1)),
        RedisService::builder().database(-1),
    ] {
        let err = builder
            .standalone("127.0.0.1:6379")
            .await
            .expect_err("absurd config");
        assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
    }
}
