//! RedisService against a real Sentinel topology (1 master, 2 replicas, 3
//! sentinels): discovery, replica reads, a killed master under a write loop,
//! the old master coming back, a paused master, and bad input.
//!
//! Failover scenarios hold the testkit's failover guard: on 2 cores, 1 s
//! failure detection sits close to scheduler stalls, so they run one at a time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::Value;
use redis_resilience_core::{
    Error, ErrorKind, NodeAddr, ReadFrom, Request, Response, Route, Sent, ServedBy, Topology,
};
use redis_resilience_service::RedisService;
use redis_resilience_testkit::{Sentinel, failover_guard};
use tower::ServiceExt;

async fn topology() -> Sentinel {
    Sentinel::start(2, 3)
        .await
        .unwrap_or_else(|err| panic!("cannot start the sentinel topology: {err}"))
}

async fn connect(topology: &Sentinel) -> RedisService {
    RedisService::builder()
        .connect_timeout(Duration::from_millis(300))
        .response_timeout(Duration::from_millis(300))
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(100))
        .sentinel(topology.sentinel_addrs(), topology.master_name())
        .await
        .expect("sentinel service")
}

async fn call(redis: &RedisService, request: Request) -> Result<Response, Error> {
    redis.clone().oneshot(request).await
}

fn cmd(args: &[&str]) -> Request {
    let mut cmd = redis::Cmd::new();
    for arg in args {
        cmd.arg(*arg);
    }
    Request::new(cmd)
}

fn addr_of(node: &redis_resilience_testkit::Node) -> NodeAddr {
    NodeAddr::parse(node.addr()).expect("node address")
}

fn served_by_node(response: &Response) -> Option<&NodeAddr> {
    match &response.served_by {
        ServedBy::Primary(addr) | ServedBy::Replica(addr) => addr.as_ref(),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovers_the_master_and_reads_from_healthy_replicas() {
    let topology = topology().await;
    let redis = connect(&topology).await;
    let master = addr_of(topology.initial_master());
    assert_eq!(redis.topology().primary(), Some(master.clone()));

    let set = call(&redis, cmd(&["SET", "k", "v"])).await.expect("SET");
    assert_eq!(set.served_by, ServedBy::Primary(Some(master.clone())));
    topology
        .wait_for_replication(Duration::from_secs(5))
        .await
        .expect("replication");

    let replicas: Vec<NodeAddr> = topology.replicas().iter().map(addr_of).collect();
    let mut seen = HashMap::new();
    for _ in 0..20 {
        let read = cmd(&["GET", "k"]).with_route(Route::Replica(ReadFrom::AnyHealthy));
        let response = call(&redis, read).await.expect("replica read");
        assert_eq!(response.value, Value::BulkString(b"v".to_vec()));
        let ServedBy::Replica(Some(addr)) = &response.served_by else {
            panic!("served by {:?}", response.served_by);
        };
        assert!(replicas.contains(addr), "{addr} is not a replica");
        *seen.entry(addr.clone()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "AnyHealthy should spread reads: {seen:?}");
    let lowest_lag = call(
        &redis,
        cmd(&["GET", "k"]).with_route(Route::Replica(ReadFrom::LowestLag)),
    )
    .await
    .expect("replica read");
    assert!(matches!(lowest_lag.served_by, ServedBy::Replica(Some(_))));

    // A write is never sent to a replica, whatever its route says.
    let err = call(
        &redis,
        cmd(&["SET", "k", "x"]).with_route(Route::Replica(ReadFrom::LowestLag)),
    )
    .await
    .expect_err("write to a replica");
    assert_eq!((err.kind(), err.sent()), (&ErrorKind::Config, Sent::No));
    let err = call(
        &redis,
        cmd(&["INCR", "n"]).with_route(Route::Node(replicas[0].clone())),
    )
    .await
    .expect_err("write to a replica by address");
    assert_eq!(err.kind(), &ErrorKind::Config);

    let view = redis.topology();
    assert_eq!(view.node_for(&cmd(&["GET", "k"])), Some(master.clone()));
    let mut listed = view.replicas_of(&master);
    listed.sort();
    let mut expected = replicas.clone();
    expected.sort();
    assert_eq!(listed, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_error_within_the_connect_timeout() {
    let topology = topology().await;
    let sentinels = topology.sentinel_addrs();

    let err = RedisService::sentinel(&sentinels, "nosuchmaster")
        .await
        .expect_err("wrong name");
    assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("nosuchmaster"), "{err}");

    let err = RedisService::sentinel(Vec::<String>::new(), "mymaster")
        .await
        .expect_err("empty");
    assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
    let err = RedisService::sentinel(&sentinels, " ")
        .await
        .expect_err("empty name");
    assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
    let err = RedisService::sentinel(["redis://[::1"], "mymaster")
        .await
        .expect_err("bad URL");
    assert_eq!(err.kind(), &ErrorKind::Config, "{err}");

    let unused = redis_resilience_testkit::reserve_port().expect("port");
    let started = Instant::now();
    let err = RedisService::builder()
        .connect_timeout(Duration::from_millis(300))
        .sentinel([format!("127.0.0.1:{}", unused.port())], "mymaster")
        .await
        .expect_err("no sentinel reachable");
    assert_eq!(
        (err.kind(), err.sent()),
        (&ErrorKind::Connect, Sent::No),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // One dead sentinel in the list is skipped.
    let mut with_dead = vec![format!("127.0.0.1:{}", unused.port())];
    with_dead.extend(sentinels.iter().cloned());
    let redis = RedisService::sentinel(&with_dead, "mymaster")
        .await
        .expect("skips the dead one");
    call(&redis, cmd(&["PING"])).await.expect("PING");
}

/// Kill -9 of the master under a steady INCR loop: writes resume within 3.5 s,
/// the counter never exceeds acknowledged + unknown-fate writes, and when the
/// old master comes back (as a master, for a while) no write is acknowledged by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_kill_under_writes_resumes_fast_and_never_double_counts() {
    let _serial = failover_guard().await.expect("failover guard");
    let topology = topology().await;
    let redis = connect(&topology).await;
    let old_master = topology.initial_master();
    let old_addr = addr_of(old_master);

    call(&redis, cmd(&["SET", "counter", "0"]))
        .await
        .expect("SET");
    topology
        .wait_for_replication(Duration::from_secs(5))
        .await
        .expect("replicas in sync before the run");

    let mut acked: Vec<Instant> = Vec::new();
    let mut maybe = 0u64;
    let mut killed_at = None;
    let mut resumed_after = None;
    let mut acked_by_old_after_kill = 0;
    let mut readonly_errors = 0;
    let started = Instant::now();
    let mut restarted = false;
    let mut old_demoted_at = None;
    while started.elapsed() < Duration::from_secs(30) {
        // Write for a while first, so a bound on lost writes means something.
        if killed_at.is_none() && started.elapsed() >= Duration::from_millis(1500) {
            old_master.kill().expect("kill -9 the master");
            killed_at = Some(Instant::now());
        }
        let deadline = Instant::now() + Duration::from_millis(300);
        match call(&redis, cmd(&["INCR", "counter"]).with_deadline(deadline)).await {
            Ok(response) => {
                acked.push(Instant::now());
                if let Some(at) = killed_at {
                    resumed_after.get_or_insert(at.elapsed());
                    if served_by_node(&response) == Some(&old_addr) {
                        acked_by_old_after_kill += 1;
                    }
                }
            }
            Err(err) => {
                match err.sent() {
                    Sent::Maybe => maybe += 1,
                    Sent::No => {}
                    Sent::Yes if err.kind() == &ErrorKind::ReadOnly => readonly_errors += 1,
                    Sent::Yes => panic!("unexpected server error {err}"),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        // Once writes go to the new master, bring the old one back: it comes
        // up as a master with no data until the sentinels demote it.
        if resumed_after.is_some() && !restarted {
            old_master.restart().await.expect("restart old master");
            restarted = true;
        }
        if restarted
            && old_demoted_at.is_none()
            && let Ok(info) = old_master.query::<String>(&["INFO", "replication"]).await
            && info.contains("role:slave")
        {
            old_demoted_at = Some(Instant::now());
        }
        if let Some(at) = old_demoted_at
            && at.elapsed() > Duration::from_millis(500)
        {
            break;
        }
    }
    let killed_at = killed_at.expect("the master was killed");
    let resumed_after = resumed_after.expect("writes never resumed after the kill");
    assert!(old_demoted_at.is_some(), "the old master was never demoted");

    let final_value: i64 = match call(&redis, cmd(&["GET", "counter"]))
        .await
        .expect("GET")
        .value
    {
        Value::BulkString(bytes) => String::from_utf8_lossy(&bytes).parse().expect("a number"),
        other => panic!("GET counter returned {other:?}"),
    };
    let acknowledged = acked.len() as i64;
    let lost_by_redis = (acknowledged - final_value).max(0);
    let acked_just_before_kill = acked
        .iter()
        .filter(|at| **at <= killed_at && killed_at.duration_since(**at) < Duration::from_secs(1))
        .count() as i64;
    eprintln!(
        "writes resumed {resumed_after:?} after kill -9; acknowledged {acknowledged}, unknown fate (Sent::Maybe) {maybe}, \
         final counter {final_value}, lost by Redis in the failover {lost_by_redis}, READONLY answers {readonly_errors}"
    );
    assert!(
        resumed_after <= Duration::from_millis(3500),
        "writes resumed only {resumed_after:?} after the kill"
    );
    assert_eq!(
        acked_by_old_after_kill, 0,
        "writes acknowledged by the old master after the kill"
    );
    assert!(
        final_value <= acknowledged + maybe as i64,
        "counter {final_value} > acknowledged {acknowledged} + maybe {maybe}: a write was sent twice"
    );
    assert!(
        lost_by_redis <= acked_just_before_kill,
        "lost {lost_by_redis} writes, more than the {acked_just_before_kill} acknowledged in the second before the kill"
    );
    // READONLY must trigger rediscovery, not an error loop.
    assert!(
        readonly_errors < 20,
        "{readonly_errors} READONLY answers: stuck on a replica"
    );
}

/// SIGSTOP of the master: requests end with `Timeout` at their deadline (no
/// hang), and succeed again once the sentinels have promoted a replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_master_times_out_at_deadlines_then_writes_resume_on_the_new_master() {
    let _serial = failover_guard().await.expect("failover guard");
    let topology = topology().await;
    let redis = connect(&topology).await;
    let old_master = topology.initial_master();
    let old_addr = addr_of(old_master);
    call(&redis, cmd(&["SET", "k", "v"])).await.expect("SET");

    old_master.pause().expect("SIGSTOP the master");
    let paused_at = Instant::now();
    let mut timeouts = 0;
    let resumed = loop {
        assert!(
            paused_at.elapsed() < Duration::from_secs(15),
            "writes never resumed"
        );
        let sent_at = Instant::now();
        let deadline = Instant::now() + Duration::from_millis(250);
        match call(&redis, cmd(&["SET", "k", "w"]).with_deadline(deadline)).await {
            Ok(response) => {
                assert_ne!(served_by_node(&response), Some(&old_addr));
                break paused_at.elapsed();
            }
            Err(err) => {
                assert!(
                    sent_at.elapsed() < Duration::from_millis(700),
                    "a request outlived its 250 ms deadline by far: {:?} ({err})",
                    sent_at.elapsed()
                );
                if err.kind() == &ErrorKind::Timeout {
                    timeouts += 1;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    old_master.resume().expect("SIGCONT");
    eprintln!("paused master: {timeouts} timeouts, writes resumed {resumed:?} after SIGSTOP");
    assert!(timeouts > 0, "requests to a paused master must time out");

    // The resumed old master is demoted; writes keep going to the new one.
    for _ in 0..50 {
        let response = call(&redis, cmd(&["INCR", "after"]))
            .await
            .expect("write after resume");
        assert_ne!(served_by_node(&response), Some(&old_addr));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
