//! The presets over a real server: the two stacks share one set of layers, a
//! dead server still answers cached reads (stale, with their age) and fails
//! writes before sending them.

use std::time::Duration;

use redis::Value;
use redis_resilience::layers::StalenessLayer;
use redis_resilience::presets::Presets;
use redis_resilience::{ErrorKind, NodeAddr, RedisService, Request, Sent, ServedBy};
use redis_resilience_testkit::Standalone;
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_reads_and_critical_writes_share_their_layers() {
    let server = Standalone::start()
        .await
        .unwrap_or_else(|err| panic!("cannot start redis-server: {err}"));
    let redis = RedisService::builder()
        .connect_timeout(Duration::from_millis(200))
        .response_timeout(Duration::from_millis(200))
        .standalone(server.addr())
        .await
        .expect("service");
    let presets = Presets::new(&redis).with_staleness(StalenessLayer::new(Duration::from_secs(30)));
    let reads = presets.cache_reads(redis.clone());
    let writes = presets.critical_writes(redis.clone());

    let set = writes
        .clone()
        .oneshot(Request::new(redis::cmd("SET").arg("k").arg("v").clone()))
        .await
        .expect("SET");
    assert!(set.served_by.is_primary());
    let get = reads
        .clone()
        .oneshot(Request::new(redis::cmd("GET").arg("k").clone()))
        .await
        .expect("GET");
    assert_eq!(get.value, Value::BulkString(b"v".to_vec()));

    // One breaker per node, shared: forcing it open through the presets
    // stops both stacks from sending.
    let node = NodeAddr::parse(server.addr()).expect("address");
    presets.circuit_breaker().force_open(Some(&node));
    let err = writes
        .clone()
        .oneshot(Request::new(redis::cmd("SET").arg("k").arg("w").clone()))
        .await
        .expect_err("breaker forced open");
    assert!(matches!(err.kind(), ErrorKind::CircuitOpen { .. }), "{err}");
    presets.circuit_breaker().reset(Some(&node));

    // The server dies: the read is answered from the staleness cache, the
    // write fails without being sent.
    server.node().kill().expect("kill");
    let stale = reads
        .clone()
        .oneshot(Request::new(redis::cmd("GET").arg("k").clone()))
        .await
        .expect("a kept value");
    assert_eq!(stale.value, Value::BulkString(b"v".to_vec()));
    assert!(
        matches!(stale.served_by, ServedBy::Stale { age } if age < Duration::from_secs(30)),
        "{:?}",
        stale.served_by
    );
    let err = writes
        .oneshot(Request::new(redis::cmd("INCR").arg("n").clone()))
        .await
        .expect_err("server is dead");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Connect | ErrorKind::Io | ErrorKind::CircuitOpen { .. }
        ),
        "{err}"
    );
    assert_ne!(err.sent(), Sent::Yes);
}
