//! Sentinel topologies: readiness and failover after the master dies.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis_resilience_testkit::{MASTER_NAME, Sentinel, failover_guard};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinels_name_the_master_and_know_everyone() -> TestResult {
    let topology = Sentinel::start(2, 3).await?;
    assert_eq!(topology.master_name(), MASTER_NAME);
    assert_eq!(topology.quorum(), 2);
    assert_eq!(topology.sentinel_addrs().len(), 3);
    assert_eq!(topology.replicas().len(), 2);
    let master = topology.current_master().await?;
    assert_eq!(master.addr(), topology.initial_master().addr());
    assert_eq!(topology.current_replicas().await?.len(), 2);
    for sentinel in topology.sentinels() {
        let addr: (String, u16) = sentinel
            .query(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME])
            .await?;
        assert_eq!(addr, ("127.0.0.1".to_owned(), master.port()));
        let replicas: Vec<HashMap<String, String>> = sentinel
            .query(&["SENTINEL", "REPLICAS", MASTER_NAME])
            .await?;
        assert_eq!(replicas.len(), 2);
        let others: Vec<HashMap<String, String>> = sentinel
            .query(&["SENTINEL", "SENTINELS", MASTER_NAME])
            .await?;
        assert_eq!(others.len(), 2);
        let periods: HashMap<String, i64> = sentinel.query(&["SENTINEL", "DEBUG"]).await?;
        assert_eq!(periods.get("PUBLISH-PERIOD"), Some(&500), "{periods:?}");
        assert_eq!(periods.get("INFO-PERIOD"), Some(&1000), "{periods:?}");
        assert_eq!(periods.get("PING-PERIOD"), Some(&500), "{periods:?}");
    }
    // Replication works through the topology.
    let () = master.query(&["SET", "k", "v"]).await?;
    topology
        .wait_for_replication(Duration::from_secs(10))
        .await?;
    let value: Option<String> = topology.replicas()[1].query(&["GET", "k"]).await?;
    assert_eq!(value.as_deref(), Some("v"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_master_makes_sentinels_promote_a_replica() -> TestResult {
    let _serial = failover_guard().await?;
    let topology = Sentinel::start(1, 3).await?;
    let old = topology.current_master().await?;
    let killed_at = Instant::now();
    old.kill()?;
    let new = topology
        .wait_for_new_master(old, Duration::from_secs(30))
        .await?;
    eprintln!("new master after {:?}", killed_at.elapsed());
    assert_eq!(new.addr(), topology.replicas()[0].addr());
    let () = new.query(&["SET", "after-failover", "1"]).await?;
    // The old master comes back empty; Sentinel turns it into a replica later.
    old.restart().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_sentinel_failover_switches_the_master() -> TestResult {
    let _serial = failover_guard().await?;
    let topology = Sentinel::start(1, 3).await?;
    let new = topology.failover().await?;
    assert_eq!(new.addr(), topology.replicas()[0].addr());
    assert_eq!(topology.current_master().await?.addr(), new.addr());
    Ok(())
}
