//! A live reshard: slots move between primaries while reads and writes go on,
//! and `RedirectLayer` follows every `ASK` and `MOVED` so callers see none.
//!
//! ```text
//! cargo run --release --example cluster_reshard
//! ```
//!
//! Needs only `redis-server` on `PATH`: the testkit starts a 3+0 cluster.

#![expect(clippy::print_stdout, reason = "an example shows its results")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis_resilience::core::slot::key_slot;
use redis_resilience::layers::{RedirectLayer, RetryLayer, RetryPolicy};
use redis_resilience::{ErrorKind, RedisService, Request};
use redis_resilience_testkit::Cluster;
use tower::{ServiceBuilder, ServiceExt};

const KEYS: usize = 200;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("starting a 3-primary Redis Cluster on loopback…");
    let cluster = Cluster::start(3, 0).await?;
    let redis = RedisService::cluster(cluster.nodes().iter().map(|n| n.addr())).await?;

    // Count the redirects the service reports, below the layer that follows them.
    let (moved, asked) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let counting = {
        let (moved, asked) = (Arc::clone(&moved), Arc::clone(&asked));
        redis.clone().map_err(move |err: redis_resilience::Error| {
            match err.kind() {
                ErrorKind::Moved { .. } => moved.fetch_add(1, Ordering::Relaxed),
                ErrorKind::Ask { .. } => asked.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
            err
        })
    };
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryPolicy::default()))
        .layer(RedirectLayer::new())
        .service(counting);

    let key = |i: usize| format!("account:{i}");
    for i in 0..KEYS {
        svc.clone()
            .oneshot(Request::new(redis::cmd("SET").arg(key(i)).arg(i).clone()))
            .await?;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut workers = Vec::new();
    for worker in 0..4usize {
        let (svc, stop, ok, failed) = (
            svc.clone(),
            Arc::clone(&stop),
            Arc::clone(&ok),
            Arc::clone(&failed),
        );
        workers.push(tokio::spawn(async move {
            let mut i = worker;
            while !stop.load(Ordering::Relaxed) {
                let cmd = if i % 5 == 0 {
                    redis::cmd("INCR").arg(key(i % KEYS)).clone()
                } else {
                    redis::cmd("GET").arg(key(i % KEYS)).clone()
                };
                i += 4;
                match svc.clone().oneshot(Request::new(cmd)).await {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }

    // Move the slots of the first 20 keys to another primary, one at a time.
    let started = Instant::now();
    let mut slots: Vec<u16> = (0..20).map(|i| key_slot(key(i).as_bytes())).collect();
    slots.sort_unstable();
    slots.dedup();
    let mut moved_keys = 0;
    for slot in &slots {
        let source = cluster.slot_owner(*slot).await?;
        let target = cluster
            .primaries()
            .iter()
            .find(|p| p.addr() != source.addr())
            .ok_or("no other primary")?;
        let migration = cluster.slot_migration(*slot, target).await?;
        migration.begin().await?;
        // Leave the slot half-migrated for a moment: requests get ASK.
        tokio::time::sleep(Duration::from_millis(50)).await;
        moved_keys += migration.move_keys().await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        migration.finish().await?;
        println!(
            "  slot {slot:>5} moved {} → {}",
            source.addr(),
            target.addr()
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await?;
    }

    println!(
        "\nresharded {} slots ({moved_keys} keys) in {:.1} s while serving requests:",
        slots.len(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "  requests answered          {}",
        ok.load(Ordering::Relaxed)
    );
    println!(
        "  requests failed            {}",
        failed.load(Ordering::Relaxed)
    );
    println!(
        "  ASK redirects followed     {}",
        asked.load(Ordering::Relaxed)
    );
    println!(
        "  MOVED redirects followed   {}",
        moved.load(Ordering::Relaxed)
    );
    if failed.load(Ordering::Relaxed) > 0 {
        return Err("some requests failed during the reshard".into());
    }
    Ok(())
}
