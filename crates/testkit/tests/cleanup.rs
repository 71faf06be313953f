//! No redis-server outlives its topology, even when a test panics.

use std::path::Path;

use redis_resilience_testkit::{Cluster, Sentinel, Standalone};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_topologies_leave_no_process() -> TestResult {
    let sentinel = Sentinel::start(1, 1).await?;
    let cluster = Cluster::start(1, 1).await?;
    let mut pids = Vec::new();
    for node in sentinel
        .data_nodes()
        .iter()
        .chain(sentinel.sentinels())
        .chain(cluster.nodes())
    {
        pids.push(node.pid().ok_or("a fresh node has no pid")?);
    }
    assert_eq!(pids.len(), 5);
    assert!(pids.iter().all(|pid| alive(*pid)));
    // A paused node is killed too.
    sentinel.replicas()[0].pause()?;
    cluster.replicas()[0].pause()?;
    let dirs = [
        sentinel.initial_master().dir().to_owned(),
        cluster.primaries()[0].dir().to_owned(),
    ];
    drop(sentinel);
    drop(cluster);
    for pid in pids {
        assert!(!alive(pid), "redis-server {pid} survived its topology");
    }
    for dir in dirs {
        assert!(!dir.exists(), "{} survived its topology", dir.display());
    }
    Ok(())
}

#[test]
fn a_panicking_test_kills_its_servers() {
    let (sender, receiver) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        runtime.block_on(async move {
            let server = Standalone::start().await.expect("a standalone server");
            sender
                .send(server.node().pid())
                .expect("the receiver is alive");
            panic!("deliberate panic with a server running");
        });
    })
    .join();
    assert!(outcome.is_err(), "the thread did not panic");
    let pid = receiver
        .recv()
        .expect("the server started")
        .expect("the server has a pid");
    assert!(!alive(pid), "redis-server {pid} survived a panic");
}
