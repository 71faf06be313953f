//! ReplicaFallbackLayer + CircuitBreakerLayer over real topologies: a paused
//! cluster primary (per-node breaker versus one global breaker) and a killed
//! Sentinel master.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redis_resilience::core::slot::key_slot;
use redis_resilience::layers::{
    CircuitBreakerConfig, CircuitBreakerHandle, CircuitBreakerLayer, CircuitState,
    ReplicaFallbackLayer,
};
use redis_resilience::{ErrorKind, NodeAddr, RedisService, Request, ServedBy};
use redis_resilience_testkit::{Cluster, Sentinel, failover_guard};
use tokio::sync::Mutex;
use tower::{ServiceBuilder, ServiceExt};

fn get(key: &str) -> Request {
    Request::new(redis::cmd("GET").arg(key).clone())
}

/// A 2 s window, so the thousands of successes before a fault age out fast.
fn breaker_config() -> CircuitBreakerConfig {
    CircuitBreakerConfig::builder()
        .window(Duration::from_secs(2), 10)
        .failure_rate(0.25)
        .minimum_calls(10)
        .open_duration(Duration::from_secs(1), Duration::from_secs(4))
        .probe_timeout(Duration::from_millis(300))
        .build()
        .expect("breaker config")
}

fn p99(latencies: &mut [Duration]) -> Duration {
    latencies.sort();
    latencies
        .get(latencies.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or_default()
}

/// What 8 readers saw over one phase.
#[derive(Debug, Default)]
struct Phase {
    healthy_latencies: Vec<Duration>,
    errors: Vec<String>,
    healthy_rejected: usize,
    sick_by_replica: usize,
}

/// 8 tasks read `keys` round robin through `svc` for `duration`.
async fn read_phase<S>(svc: S, keys: Arc<Vec<(String, bool)>>, duration: Duration) -> Phase
where
    S: tower::Service<
            Request,
            Response = redis_resilience::Response,
            Error = redis_resilience::Error,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let phase = Arc::new(Mutex::new(Phase::default()));
    let started = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let (svc, keys, phase) = (svc.clone(), Arc::clone(&keys), Arc::clone(&phase));
            tokio::spawn(async move {
                let mut i = task;
                while started.elapsed() < duration {
                    let (key, sick) = &keys[i % keys.len()];
                    i += 1;
                    let sent = Instant::now();
                    let result = svc.clone().oneshot(get(key)).await;
                    let elapsed = sent.elapsed();
                    let mut phase = phase.lock().await;
                    match result {
                        Ok(response) => {
                            if *sick {
                                phase.sick_by_replica +=
                                    usize::from(matches!(response.served_by, ServedBy::Replica(_)));
                            } else {
                                phase.healthy_latencies.push(elapsed);
                            }
                        }
                        Err(err) => {
                            if !*sick && matches!(err.kind(), ErrorKind::CircuitOpen { .. }) {
                                phase.healthy_rejected += 1;
                            }
                            phase.errors.push(format!("{key}: {err}"));
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("reader task");
    }
    Arc::try_unwrap(phase)
        .map(Mutex::into_inner)
        .unwrap_or_default()
}

/// A 3+3 cluster whose failover does not start during a short pause, keys on
/// every shard, and which of them live on `sick`.
async fn paused_primary_setup() -> (Cluster, RedisService, Arc<Vec<(String, bool)>>, NodeAddr) {
    let cluster = Cluster::builder(3, 1)
        .config("cluster-node-timeout", "15000")
        .start()
        .await
        .unwrap_or_else(|err| panic!("cannot start the cluster: {err}"));
    let writer = RedisService::cluster(cluster.nodes().iter().map(|n| n.addr()))
        .await
        .expect("cluster service");
    let sick = cluster.primaries()[0].addr().to_owned();
    let mut keys = Vec::new();
    for i in 0..48 {
        let key = format!("read:{i}");
        let owner = cluster
            .slot_owner(key_slot(key.as_bytes()))
            .await
            .expect("owner");
        writer
            .clone()
            .oneshot(Request::new(redis::cmd("SET").arg(&key).arg(i).clone()))
            .await
            .expect("SET");
        keys.push((key, owner.addr() == sick));
    }
    // Replicas have the values (and are online in CLUSTER SHARDS) before the
    // service under test reads its slot map.
    for primary in cluster.primaries() {
        let _: i64 = primary
            .query(&["WAIT", "1", "2000"])
            .await
            .expect("WAIT for the replica");
    }
    let redis = RedisService::builder()
        .response_timeout(Duration::from_millis(150))
        .connect_timeout(Duration::from_millis(300))
        .cluster(cluster.nodes().iter().map(|n| n.addr()))
        .await
        .expect("cluster service");
    let sick = NodeAddr::parse(&sick).expect("address");
    (cluster, redis, Arc::new(keys), sick)
}

async fn wait_for_state(
    handle: &CircuitBreakerHandle,
    node: Option<&NodeAddr>,
    want: CircuitState,
) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if handle.state(node) == Some(want) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_primary_opens_only_its_breaker_and_its_reads_go_to_its_replica() {
    let _serial = failover_guard().await.expect("failover guard");
    let (cluster, redis, keys, sick) = paused_primary_setup().await;
    let breaker = CircuitBreakerLayer::per_node(redis.topology(), breaker_config());
    let handle = breaker.handle();
    let svc = ServiceBuilder::new()
        .layer(ReplicaFallbackLayer::new())
        .layer(breaker)
        .service(redis.clone());

    let mut before = read_phase(svc.clone(), Arc::clone(&keys), Duration::from_millis(1500)).await;
    assert!(
        before.errors.is_empty(),
        "errors before the fault: {:?}",
        before.errors
    );

    let paused = &cluster.primaries()[0];
    paused.pause().expect("SIGSTOP");
    let mut during = read_phase(svc.clone(), Arc::clone(&keys), Duration::from_secs(3)).await;
    let state_during = handle.state(Some(&sick));
    paused.resume().expect("SIGCONT");

    let (base, fault) = (
        p99(&mut before.healthy_latencies),
        p99(&mut during.healthy_latencies),
    );
    eprintln!(
        "per-node breaker: healthy-shard p99 {base:?} before, {fault:?} during the pause; \
         {} reads of the paused shard served by its replica; {} errors; breaker {state_during:?}",
        during.sick_by_replica,
        during.errors.len()
    );
    assert!(
        during.errors.is_empty(),
        "read errors during the pause: {:?}",
        &during.errors[..during.errors.len().min(5)]
    );
    assert!(
        during.sick_by_replica > 0,
        "no read of the paused shard went to its replica"
    );
    assert_eq!(
        state_during,
        Some(CircuitState::Open),
        "the paused node's breaker should be open"
    );
    for other in cluster.primaries().iter().skip(1) {
        let node = NodeAddr::parse(other.addr()).expect("address");
        assert_eq!(
            handle.state(Some(&node)),
            Some(CircuitState::Closed),
            "{node}"
        );
    }
    // Loopback latencies are tens of microseconds, where scheduler noise on 2
    // cores dominates: the 2× bound has a 2 ms floor.
    assert!(
        fault <= (base * 2).max(Duration::from_millis(2)),
        "healthy shards slowed down: p99 {base:?} → {fault:?}"
    );

    // Resumed: probes succeed and the breaker closes.
    let reader = {
        let (svc, keys) = (svc.clone(), Arc::clone(&keys));
        tokio::spawn(async move { read_phase(svc, keys, Duration::from_secs(4)).await })
    };
    let closed = wait_for_state(&handle, Some(&sick), CircuitState::Closed).await;
    let after = reader.await.expect("reader");
    assert!(closed, "the breaker did not close after SIGCONT");
    assert!(
        after.errors.is_empty(),
        "errors after the resume: {:?}",
        after.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_breaker_in_the_same_pause_rejects_healthy_shards_too() {
    let _serial = failover_guard().await.expect("failover guard");
    let (cluster, redis, keys, _sick) = paused_primary_setup().await;
    let breaker = CircuitBreakerLayer::new(breaker_config());
    let handle = breaker.handle();
    let svc = ServiceBuilder::new()
        .layer(ReplicaFallbackLayer::new())
        .layer(breaker)
        .service(redis);

    let paused = &cluster.primaries()[0];
    paused.pause().expect("SIGSTOP");
    let during = read_phase(svc, keys, Duration::from_secs(3)).await;
    let state = handle.state(None);
    paused.resume().expect("SIGCONT");
    eprintln!(
        "global breaker, for contrast: {} healthy-shard reads rejected with CircuitOpen, {} errors in all; breaker {state:?}",
        during.healthy_rejected,
        during.errors.len()
    );
    assert!(
        during.healthy_rejected > 0,
        "one global breaker should have rejected reads of healthy shards"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_master_kill_reads_never_fail_and_writes_never_reach_a_replica() {
    let _serial = failover_guard().await.expect("failover guard");
    let topology = Sentinel::start(2, 3)
        .await
        .unwrap_or_else(|err| panic!("cannot start the sentinel topology: {err}"));
    let redis = RedisService::builder()
        .connect_timeout(Duration::from_millis(300))
        .response_timeout(Duration::from_millis(300))
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(100))
        .sentinel(topology.sentinel_addrs(), topology.master_name())
        .await
        .expect("sentinel service");
    redis
        .clone()
        .oneshot(Request::new(redis::cmd("SET").arg("k").arg("v").clone()))
        .await
        .expect("SET");
    topology
        .wait_for_replication(Duration::from_secs(5))
        .await
        .expect("in sync");

    let svc = ServiceBuilder::new()
        .layer(ReplicaFallbackLayer::new())
        .layer(CircuitBreakerLayer::per_node(
            redis.topology(),
            CircuitBreakerConfig::default(),
        ))
        .service(redis.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let (reads, by_replica, writes_on_replica) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let errors = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let (svc, stop, reads, by_replica, errors) = (
            svc.clone(),
            Arc::clone(&stop),
            Arc::clone(&reads),
            Arc::clone(&by_replica),
            Arc::clone(&errors),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match svc.clone().oneshot(get("k")).await {
                    Ok(response) => {
                        reads.fetch_add(1, Ordering::Relaxed);
                        if matches!(response.served_by, ServedBy::Replica(_)) {
                            by_replica.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(err) => errors.lock().await.push(err.to_string()),
                }
            }
        })
    };
    let writer = {
        let (svc, stop, writes_on_replica) = (
            svc.clone(),
            Arc::clone(&stop),
            Arc::clone(&writes_on_replica),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let set = Request::new(redis::cmd("SET").arg("w").arg("x").clone());
                if let Ok(response) = svc.clone().oneshot(set).await
                    && matches!(response.served_by, ServedBy::Replica(_))
                {
                    writes_on_replica.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let old = topology.initial_master();
    old.kill().expect("kill -9 the master");
    let new = topology
        .wait_for_new_master(old, Duration::from_secs(15))
        .await
        .expect("new master");
    let new_addr = NodeAddr::parse(new.addr()).expect("address");
    // Keep reading until the service writes to the new master.
    let started = Instant::now();
    while redis.topology().primary() != Some(new_addr.clone())
        && started.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    reader.await.expect("reader");
    writer.await.expect("writer");

    let errors = errors.lock().await;
    eprintln!(
        "sentinel failover: {} reads, {} served by a replica, {} read errors",
        reads.load(Ordering::Relaxed),
        by_replica.load(Ordering::Relaxed),
        errors.len()
    );
    assert!(
        errors.is_empty(),
        "read errors during the failover: {:?}",
        &errors[..errors.len().min(5)]
    );
    assert!(
        by_replica.load(Ordering::Relaxed) > 0,
        "no read was served by a replica"
    );
    assert_eq!(
        writes_on_replica.load(Ordering::Relaxed),
        0,
        "a write was served by a replica"
    );
}
