//! Cluster topologies: readiness, failover and slot migration replies.

use std::time::{Duration, Instant};

use redis_resilience_testkit::{Cluster, failover_guard};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_plus_three_cluster_is_ok_everywhere() -> TestResult {
    let started = Instant::now();
    let cluster = Cluster::start(3, 1).await?;
    eprintln!("3+3 cluster ready after {:?}", started.elapsed());
    assert_eq!(cluster.nodes().len(), 6);
    assert_eq!(cluster.primaries().len(), 3);
    assert_eq!(cluster.replicas().len(), 3);
    for node in cluster.nodes() {
        let info: String = node.query(&["CLUSTER", "INFO"]).await?;
        assert!(info.contains("cluster_state:ok"), "{node}: {info}");
        assert!(info.contains("cluster_slots_ok:16384"), "{node}: {info}");
        assert!(node.bus_port().is_some());
        assert!(node.cluster_id().is_some());
    }
    for primary in cluster.primaries() {
        let replicas = cluster.replicas_of(primary);
        assert_eq!(replicas.len(), 1);
        let info: String = replicas[0].query(&["INFO", "replication"]).await?;
        assert!(
            info.contains(&format!("master_port:{}", primary.port())),
            "{info}"
        );
        assert!(info.contains("master_link_status:up"), "{info}");
    }
    assert_eq!(
        cluster.slot_owner(0).await?.addr(),
        cluster.primaries()[0].addr()
    );
    assert_eq!(
        cluster.slot_owner(16383).await?.addr(),
        cluster.primaries()[2].addr()
    );
    let current = cluster.current_primaries().await?;
    assert_eq!(current.len(), 3);
    // "foo" hashes to slot 12182: the owner serves it, the others redirect.
    let owner = cluster.slot_owner(12182).await?;
    let () = owner.query(&["SET", "foo", "bar"]).await?;
    let other = &cluster.primaries()[0];
    assert_eq!(
        other.raw(&["GET", "foo"]).await?,
        format!("-MOVED 12182 {}", owner.addr())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_primary_promotes_its_replica() -> TestResult {
    let _serial = failover_guard().await?;
    let cluster = Cluster::start(3, 1).await?;
    let victim = &cluster.primaries()[1];
    let heir = &cluster.replicas_of(victim)[0];
    let killed_at = Instant::now();
    victim.kill()?;
    let promoted = cluster
        .wait_for_promotion(victim, Duration::from_secs(30))
        .await?;
    eprintln!("replica promoted after {:?}", killed_at.elapsed());
    assert_eq!(promoted.addr(), heir.addr());
    cluster.wait_for_state_ok(Duration::from_secs(30)).await?;
    let slot_of_victim = 8000;
    assert_eq!(
        cluster.slot_owner(slot_of_victim).await?.addr(),
        heir.addr()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_cluster_failover_swaps_roles() -> TestResult {
    let _serial = failover_guard().await?;
    let cluster = Cluster::start(2, 1).await?;
    let primary = &cluster.primaries()[0];
    let replica = &cluster.replicas_of(primary)[0];
    cluster.failover(replica).await?;
    cluster.wait_for_state_ok(Duration::from_secs(15)).await?;
    assert_eq!(cluster.slot_owner(0).await?.addr(), replica.addr());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_slot_gives_ask_then_moved() -> TestResult {
    let cluster = Cluster::start(3, 0).await?;
    let slot: u16 = cluster.primaries()[0]
        .query(&["CLUSTER", "KEYSLOT", "foo"])
        .await?;
    assert_eq!(slot, 12182);
    let source = cluster.slot_owner(slot).await?;
    let target = &cluster.primaries()[0];
    let () = source.query(&["SET", "foo", "bar"]).await?;

    let migration = cluster.slot_migration(slot, target).await?;
    assert_eq!(migration.source().addr(), source.addr());
    assert_eq!(migration.target().addr(), target.addr());

    // Step 1: the key is still on the source, which serves it.
    migration.begin().await?;
    assert_eq!(source.raw(&["GET", "foo"]).await?, "$3");
    // Step 2: the key moved; the source now asks the client to go to the target.
    assert_eq!(migration.move_keys().await?, 1);
    assert_eq!(
        source.raw(&["GET", "foo"]).await?,
        format!("-ASK {slot} {}", target.addr())
    );
    // Step 3: the slot belongs to the target; the old owner redirects for good.
    migration.finish().await?;
    assert_eq!(
        source.raw(&["GET", "foo"]).await?,
        format!("-MOVED {slot} {}", target.addr())
    );
    let value: Option<String> = target.query(&["GET", "foo"]).await?;
    assert_eq!(value.as_deref(), Some("bar"));
    assert_eq!(cluster.slot_owner(slot).await?.addr(), target.addr());

    // The one-call form moves it back.
    assert_eq!(cluster.migrate_slot(slot, source).await?, 1);
    assert_eq!(cluster.slot_owner(slot).await?.addr(), source.addr());
    cluster.wait_for_state_ok(Duration::from_secs(10)).await?;
    Ok(())
}
