//! StalenessLayer and CoalesceLayer against real servers: stale answers
//! within the budget once the server is killed and errors past it,
//! invalidation through a pub/sub channel and through RESP3 client tracking,
//! an invalidation racing a fetch, and a Sentinel master killed under eight
//! readers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis_resilience::layers::staleness::{pubsub_invalidations, tracking_invalidations};
use redis_resilience::layers::{
    CircuitBreakerConfig, CircuitBreakerLayer, CoalesceLayer, ReplicaFallbackLayer,
    StalenessConfig, StalenessLayer,
};
use redis_resilience::{Error, RedisService, Request, Response, ServedBy};
use redis_resilience_testkit::{Sentinel, Standalone, failover_guard};
use tokio::sync::{Notify, Semaphore};
use tower::{Service, ServiceBuilder, ServiceExt};

fn get(key: &str) -> Request {
    Request::new(redis::cmd("GET").arg(key).clone())
}

fn bulk(text: &str) -> redis::Value {
    redis::Value::BulkString(text.as_bytes().to_vec())
}

async fn standalone() -> (Standalone, RedisService) {
    let server = Standalone::start()
        .await
        .unwrap_or_else(|err| panic!("cannot start redis-server: {err}"));
    let redis = RedisService::builder()
        .connect_timeout(Duration::from_millis(200))
        .response_timeout(Duration::from_millis(200))
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(100))
        .standalone(&server.url())
        .await
        .expect("connect");
    (server, redis)
}

async fn set(server: &Standalone, key: &str, value: &str) {
    let () = server
        .node()
        .query(&["SET", key, value])
        .await
        .expect("SET");
}

async fn send<S>(svc: &S, request: Request) -> Result<Response, Error>
where
    S: Service<Request, Response = Response, Error = Error> + Clone,
{
    svc.clone().oneshot(request).await
}

/// Waits (polling) until `layer` has applied `count` invalidations.
async fn wait_for_invalidations(layer: &StalenessLayer, count: u64) {
    let started = Instant::now();
    while layer.invalidations() < count {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the invalidation never arrived"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_is_answered_stale_within_the_budget_and_fails_past_it() {
    let (server, redis) = standalone().await;
    let budget = Duration::from_millis(800);
    let staleness = StalenessLayer::new(budget);
    let svc = ServiceBuilder::new()
        .layer(staleness.clone())
        .layer(CoalesceLayer::new())
        .service(redis);
    let keys: Vec<String> = (0..5).map(|i| format!("user:{i}:name")).collect();
    for (i, key) in keys.iter().enumerate() {
        set(&server, key, &format!("name {i}")).await;
    }
    let fetched = Instant::now();
    for key in &keys {
        let response = send(&svc, get(key)).await.expect("fresh read");
        assert!(response.served_by.is_primary());
    }
    assert_eq!(staleness.kept_values(), keys.len());

    server.node().kill().expect("kill");
    // Well within the budget: every read is answered with the kept value and its age.
    let mut stale = 0;
    let mut last_ages = vec![Duration::ZERO; keys.len()];
    while fetched.elapsed() < budget / 2 {
        for (i, key) in keys.iter().enumerate() {
            let response = send(&svc, get(key))
                .await
                .unwrap_or_else(|err| panic!("{key} within the budget: {err}"));
            let ServedBy::Stale { age } = response.served_by else {
                panic!(
                    "{key}: served by {:?} from a killed server",
                    response.served_by
                );
            };
            assert_eq!(response.value, bulk(&format!("name {i}")));
            assert!(age <= fetched.elapsed(), "{age:?} is older than the fetch");
            assert!(age <= budget, "{age:?} past the budget");
            assert!(age >= last_ages[i], "ages only grow");
            last_ages[i] = age;
            stale += 1;
        }
    }
    assert!(stale >= keys.len(), "{stale} stale answers");

    // Past the budget: the original error.
    tokio::time::sleep(
        (fetched + budget + Duration::from_millis(50)).saturating_duration_since(Instant::now()),
    )
    .await;
    for key in &keys {
        let err = send(&svc, get(key)).await.expect_err("past the budget");
        assert!(err.kind().is_availability(), "{key}: {err:?}");
    }
    eprintln!("{stale} stale answers, ages up to {last_ages:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_invalidated_through_pubsub_is_never_served_stale_afterwards() {
    let (server, redis) = standalone().await;
    let staleness = StalenessLayer::new(Duration::from_secs(30));
    let client = server.node().client().expect("client");
    let invalidations = pubsub_invalidations(&client, "cache:invalidate")
        .await
        .expect("subscribe");
    let _listener = staleness.listen(invalidations);
    let svc = ServiceBuilder::new()
        .layer(staleness.clone())
        .layer(CoalesceLayer::new())
        .service(redis);

    set(&server, "changed", "old").await;
    set(&server, "unchanged", "same").await;
    send(&svc, get("changed")).await.expect("fresh");
    send(&svc, get("unchanged")).await.expect("fresh");

    // The application changes a value, then publishes its key.
    set(&server, "changed", "new").await;
    let receivers: i64 = server
        .node()
        .query(&["PUBLISH", "cache:invalidate", "changed"])
        .await
        .expect("PUBLISH");
    assert_eq!(receivers, 1, "the layer is subscribed");
    wait_for_invalidations(&staleness, 1).await;

    server.node().kill().expect("kill");
    for _ in 0..5 {
        let result = send(&svc, get("changed")).await;
        assert!(
            result.is_err(),
            "an invalidated key was answered: {result:?}"
        );
        let kept = send(&svc, get("unchanged")).await.expect("still kept");
        assert_eq!(kept.value, bulk("same"));
        assert!(matches!(kept.served_by, ServedBy::Stale { .. }));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_tracking_invalidates_keys_the_application_never_published() {
    let (server, redis) = standalone().await;
    set(&server, "changed", "old").await;
    set(&server, "unchanged", "same").await;

    let staleness = StalenessLayer::new(Duration::from_secs(30));
    let resp3 =
        redis::Client::open(format!("redis://{}/?protocol=resp3", server.addr())).expect("client");
    let invalidations = tracking_invalidations(&resp3, &[]).await.expect("tracking");
    let _listener = staleness.listen(invalidations);
    let svc = ServiceBuilder::new()
        .layer(staleness.clone())
        .service(redis);
    send(&svc, get("changed")).await.expect("fresh");
    send(&svc, get("unchanged")).await.expect("fresh");

    let before = staleness.invalidations();
    set(&server, "changed", "new").await;
    wait_for_invalidations(&staleness, before + 1).await;

    server.node().kill().expect("kill");
    let result = send(&svc, get("changed")).await;
    assert!(
        result.is_err(),
        "an invalidated key was answered: {result:?}"
    );
    let kept = send(&svc, get("unchanged")).await.expect("still kept");
    assert_eq!(kept.value, bulk("same"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_invalidation_feeds_reconnect_nothing_kept_before_the_gap_is_served() {
    let (server, redis) = standalone().await;
    // Written before the feeds start, so no invalidation of it is counted below.
    set(&server, "k", "v").await;
    let staleness = StalenessLayer::new(Duration::from_secs(30));
    let client = server.node().client().expect("client");
    let _pubsub = staleness.listen(
        pubsub_invalidations(&client, "cache:invalidate")
            .await
            .expect("subscribe"),
    );
    let resp3 =
        redis::Client::open(format!("redis://{}/?protocol=resp3", server.addr())).expect("client");
    let _tracking = staleness.listen(tracking_invalidations(&resp3, &[]).await.expect("tracking"));
    let svc = ServiceBuilder::new()
        .layer(staleness.clone())
        .service(redis);
    let kept_from = staleness.invalidations();
    send(&svc, get("k")).await.expect("fresh");
    assert_eq!(staleness.kept_values(), 1);

    // Invalidations published while the feeds were down are lost: once they
    // are back, each forgets everything kept.
    server.node().restart().await.expect("restart");
    wait_for_invalidations(&staleness, kept_from + 2).await;
    assert_eq!(staleness.kept_values(), 0);
    server.node().kill().expect("kill");
    assert!(send(&svc, get("k")).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_racing_a_fetch_never_repopulates_the_old_value() {
    let (server, redis) = standalone().await;
    let staleness = StalenessLayer::with_config(
        StalenessConfig::builder()
            .budget(Duration::from_secs(30))
            .build(),
    );
    let client = server.node().client().expect("client");
    let _listener = staleness.listen(
        pubsub_invalidations(&client, "cache:invalidate")
            .await
            .expect("subscribe"),
    );
    // Between the layer and Redis: when `hold` is on, a response that Redis
    // has already given is held back until a permit is added to `gate`.
    let hold = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(Notify::new());
    let gate = Arc::new(Semaphore::new(0));
    let delayed = {
        let (hold, answered, gate) = (Arc::clone(&hold), Arc::clone(&answered), Arc::clone(&gate));
        tower::service_fn(move |request: Request| {
            let (redis, hold, answered, gate) = (
                redis.clone(),
                hold.load(Ordering::SeqCst),
                Arc::clone(&answered),
                Arc::clone(&gate),
            );
            async move {
                let result = redis.oneshot(request).await;
                if hold {
                    answered.notify_one();
                    let _permit = gate.acquire().await.expect("gate");
                }
                result
            }
        })
    };
    let svc = ServiceBuilder::new()
        .layer(staleness.clone())
        .service(delayed);

    set(&server, "k", "old").await;
    send(&svc, get("k")).await.expect("fresh");

    // A fetch reads the old value...
    hold.store(true, Ordering::SeqCst);
    let racing = tokio::spawn(svc.clone().oneshot(get("k")));
    answered.notified().await;
    hold.store(false, Ordering::SeqCst);
    // ...the application writes the new one and invalidates...
    set(&server, "k", "new").await;
    let _: i64 = server
        .node()
        .query(&["PUBLISH", "cache:invalidate", "k"])
        .await
        .expect("PUBLISH");
    wait_for_invalidations(&staleness, 1).await;
    // ...and only then does the fetch's answer arrive.
    gate.add_permits(1);
    let late = racing.await.expect("task").expect("the racing read");
    assert_eq!(
        late.value,
        bulk("old"),
        "the racing caller gets what it read"
    );

    server.node().kill().expect("kill");
    let result = send(&svc, get("k")).await;
    assert!(
        result.is_err(),
        "the old value was written back and served: {result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_master_killed_under_eight_readers_costs_no_read_and_no_overaged_value() {
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
    let keys: Arc<Vec<String>> = Arc::new((0..16).map(|i| format!("item:{i}")).collect());
    for (i, key) in keys.iter().enumerate() {
        redis
            .clone()
            .oneshot(Request::new(redis::cmd("SET").arg(key).arg(i).clone()))
            .await
            .expect("SET");
    }
    topology
        .wait_for_replication(Duration::from_secs(5))
        .await
        .expect("in sync");

    let budget = Duration::from_secs(10);
    let svc = ServiceBuilder::new()
        .layer(StalenessLayer::new(budget))
        .layer(CoalesceLayer::new())
        .layer(ReplicaFallbackLayer::new())
        .layer(CircuitBreakerLayer::per_node(
            redis.topology(),
            CircuitBreakerConfig::default(),
        ))
        .service(redis.clone());

    // Every key is read once before the fault.
    for key in keys.iter() {
        send(&svc, get(key)).await.expect("warm-up read");
    }
    let started = Instant::now();
    let run = Duration::from_secs(7);
    let served: Arc<Mutex<HashMap<&'static str, usize>>> = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let oldest = Arc::new(Mutex::new(Duration::ZERO));
    let readers: Vec<_> = (0..8)
        .map(|reader| {
            let (svc, keys, served, errors, oldest) = (
                svc.clone(),
                Arc::clone(&keys),
                Arc::clone(&served),
                Arc::clone(&errors),
                Arc::clone(&oldest),
            );
            tokio::spawn(async move {
                let mut i = reader;
                while started.elapsed() < run {
                    let index = i % keys.len();
                    i += 1;
                    match send(&svc, get(&keys[index])).await {
                        Ok(response) => {
                            if let ServedBy::Stale { age } = response.served_by {
                                let mut oldest = oldest.lock().expect("oldest");
                                *oldest = (*oldest).max(age);
                            }
                            let expected = redis::Value::BulkString(index.to_string().into_bytes());
                            if response.value != expected {
                                errors.lock().expect("errors").push(format!(
                                    "{}: {:?} served by {:?}",
                                    keys[index], response.value, response.served_by
                                ));
                            }
                            *served
                                .lock()
                                .expect("served")
                                .entry(response.served_by.label())
                                .or_default() += 1;
                        }
                        Err(err) => errors
                            .lock()
                            .expect("errors")
                            .push(format!("{}: {err}", keys[index])),
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(1)).await;
    let old_master = topology.initial_master();
    old_master.kill().expect("kill -9 the master");
    let new_master = topology
        .wait_for_new_master(old_master, Duration::from_secs(15))
        .await
        .expect("a replica is promoted");
    eprintln!(
        "new master {} after {:?}",
        new_master.addr(),
        started.elapsed()
    );
    for reader in readers {
        reader.await.expect("reader task");
    }

    let served = served.lock().expect("served").clone();
    let errors = errors.lock().expect("errors").clone();
    let oldest = *oldest.lock().expect("oldest");
    eprintln!(
        "served {served:?}, oldest stale value {oldest:?}, {} errors",
        errors.len()
    );
    assert!(errors.is_empty(), "read errors: {errors:?}");
    assert!(oldest <= budget, "a value {oldest:?} old was served");
    assert!(
        served.values().sum::<usize>() > 100,
        "the readers kept reading"
    );
}
