//! RetryLayer and RedirectLayer over real servers: connections reset after
//! the request was written (a chaos proxy in front of a standalone server),
//! and a cluster that migrates a slot and fails over while reads go on.

use std::time::Duration;

use redis::Value;
use redis_resilience::layers::{RedirectLayer, RetryBudget, RetryLayer, RetryPolicy};
use redis_resilience::{RedisService, Request, Sent};
use redis_resilience_testkit::{ChaosProxy, Cluster, Standalone, failover_guard};
use tower::{ServiceBuilder, ServiceExt};

async fn server_behind_proxy() -> (Standalone, ChaosProxy, RedisService) {
    let server = Standalone::start()
        .await
        .unwrap_or_else(|err| panic!("cannot start redis-server: {err}"));
    let proxy = ChaosProxy::start(server.addr()).await.expect("chaos proxy");
    let redis = RedisService::builder()
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(500))
        .reconnect_backoff(Duration::from_millis(1), Duration::from_millis(20))
        .standalone(proxy.addr())
        .await
        .expect("service through the proxy");
    (server, proxy, redis)
}

/// Every connection is reset after this many bytes from the client: the
/// handshake and a few dozen commands, so resets land mid-request.
const RESET_AFTER: u64 = 1500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_survive_connections_reset_after_the_write() {
    let (_server, proxy, redis) = server_behind_proxy().await;
    redis
        .clone()
        .oneshot(Request::new(redis::cmd("SET").arg("k").arg("v").clone()))
        .await
        .expect("SET");
    proxy.toxics().reset_after(RESET_AFTER);
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryPolicy::default()))
        .service(redis);
    let mut errors = Vec::new();
    let mut unwrapped = 0;
    for _ in 0..10_000 {
        match svc
            .clone()
            .oneshot(Request::new(redis::cmd("GET").arg("k").clone()))
            .await
        {
            Ok(response) => {
                assert_eq!(response.value, Value::BulkString(b"v".to_vec()));
                unwrapped += 1;
            }
            Err(err) => errors.push(err.to_string()),
        }
    }
    eprintln!(
        "10 000 GETs through resets every {RESET_AFTER} bytes: {unwrapped} answered, {} errors",
        errors.len()
    );
    assert!(
        errors.is_empty(),
        "GET errors: {:?}",
        &errors[..errors.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incr_is_never_sent_twice_behind_the_callers_back() {
    let (server, proxy, redis) = server_behind_proxy().await;
    proxy.toxics().reset_after(RESET_AFTER);
    // A budget that never runs out: only the policy decides here.
    let policy = RetryPolicy::builder()
        .budget(RetryBudget::unlimited())
        .build();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(policy))
        .service(redis);
    let (mut acknowledged, mut maybe, mut refused) = (0i64, 0i64, 0i64);
    for _ in 0..3_000 {
        match svc
            .clone()
            .oneshot(Request::new(redis::cmd("INCR").arg("counter").clone()))
            .await
        {
            Ok(_) => acknowledged += 1,
            Err(err) => match err.sent() {
                Sent::Maybe => maybe += 1,
                Sent::No => refused += 1,
                Sent::Yes => panic!("unexpected server error {err}"),
            },
        }
    }
    proxy.toxics().clear();
    let counter: i64 = server
        .node()
        .query(&["GET", "counter"])
        .await
        .expect("GET counter");
    eprintln!(
        "INCR through resets: acknowledged {acknowledged}, unknown fate {maybe}, refused before sending {refused}, counter {counter}"
    );
    assert!(
        maybe > 0,
        "no reset hit an INCR in flight: the test proves nothing"
    );
    assert!(counter >= acknowledged, "an acknowledged INCR was lost");
    assert!(
        counter <= acknowledged + maybe,
        "counter {counter} > acknowledged {acknowledged} + unknown {maybe}: an INCR was sent twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_follow_a_slot_migration_and_a_manual_failover_without_errors() {
    let _serial = failover_guard().await.expect("failover guard");
    let cluster = Cluster::start(3, 1)
        .await
        .unwrap_or_else(|err| panic!("cannot start the cluster: {err}"));
    let redis = RedisService::builder()
        .response_timeout(Duration::from_millis(500))
        .cluster(cluster.nodes().iter().map(|n| n.addr()))
        .await
        .expect("cluster service");
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryPolicy::default()))
        .layer(RedirectLayer::new())
        .service(redis);
    let keys: Vec<String> = (0..50).map(|i| format!("{{tag}}:{i}")).collect();
    for key in &keys {
        svc.clone()
            .oneshot(Request::new(redis::cmd("SET").arg(key).arg("v").clone()))
            .await
            .expect("SET");
    }
    let slot = redis_resilience::core::slot::key_slot(b"tag");
    let source = cluster.slot_owner(slot).await.expect("owner");
    let target = cluster
        .primaries()
        .iter()
        .find(|p| p.addr() != source.addr())
        .expect("another primary");
    let migration = cluster
        .slot_migration(slot, target)
        .await
        .expect("migration");

    let read_all = |svc: tower::util::BoxCloneService<
        Request,
        redis_resilience::Response,
        redis_resilience::Error,
    >| {
        let keys = keys.clone();
        async move {
            let mut errors = Vec::new();
            for key in &keys {
                match svc
                    .clone()
                    .oneshot(Request::new(redis::cmd("GET").arg(key).clone()))
                    .await
                {
                    Ok(response) => {
                        assert_eq!(response.value, Value::BulkString(b"v".to_vec()), "{key}");
                    }
                    Err(err) => errors.push(format!("{key}: {err}")),
                }
            }
            errors
        }
    };
    let boxed = tower::util::BoxCloneService::new(svc);
    migration.begin().await.expect("MIGRATING/IMPORTING");
    let mut errors = read_all(boxed.clone()).await;
    // Half the keys moved: those answer ASK and are followed.
    let moved = migration.move_keys().await.expect("move keys");
    errors.extend(read_all(boxed.clone()).await);
    migration.finish().await.expect("SETSLOT NODE");
    errors.extend(read_all(boxed.clone()).await);
    // A graceful failover of the new owner: one MOVED, followed.
    let replica = &cluster.replicas_of(target)[0];
    cluster.failover(replica).await.expect("CLUSTER FAILOVER");
    errors.extend(read_all(boxed.clone()).await);
    assert!(moved > 0);
    assert!(errors.is_empty(), "reads failed: {errors:?}");
}
