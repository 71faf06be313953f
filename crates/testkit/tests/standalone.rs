//! Standalone and replicated topologies, node faults, ports and the failover guard.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::AsyncCommands;
use redis_resilience_testkit::{
    ProcessState, Replicated, Standalone, failover_guard, reserve_port,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_answers_set_and_get() -> TestResult {
    let server = Standalone::start().await?;
    assert!(server.url().starts_with("redis://127.0.0.1:"));
    assert_eq!(server.addr(), server.node().socket_addr().to_string());
    let mut conn = server.node().connection().await?;
    let () = conn.set("greeting", "hello").await?;
    let value: Option<String> = conn.get("greeting").await?;
    assert_eq!(value.as_deref(), Some("hello"));
    assert!(server.node().log().contains("Ready to accept connections"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_with_password_requires_auth() -> TestResult {
    let server = Standalone::builder()
        .password("s3cret")
        .config("maxmemory", "32mb")
        .start()
        .await?;
    // The node's own helpers authenticate.
    let pong: String = server.node().query(&["PING"]).await?;
    assert_eq!(pong, "PONG");
    let maxmemory: Vec<String> = server.node().query(&["CONFIG", "GET", "maxmemory"]).await?;
    assert_eq!(maxmemory, ["maxmemory", "33554432"]);
    // A client without the password is refused.
    let anonymous = redis::Client::open(server.url())?;
    let mut conn = anonymous.get_multiplexed_async_connection().await?;
    let Err(err) = redis::cmd("PING").query_async::<String>(&mut conn).await else {
        panic!("PING without AUTH succeeded");
    };
    assert_eq!(err.code(), Some("NOAUTH"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_the_port_and_clears_data() -> TestResult {
    let server = Standalone::start().await?;
    let node = server.node();
    let () = node.query(&["SET", "k", "v"]).await?;
    let old_pid = node.pid();
    node.restart().await?;
    assert_ne!(node.pid(), old_pid);
    assert_eq!(node.state(), ProcessState::Running);
    let value: Option<String> = node.query(&["GET", "k"]).await?;
    assert_eq!(value, None, "data survived a restart");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_answers_and_resume_brings_them_back() -> TestResult {
    let server = Standalone::start().await?;
    let node = server.node();
    let client = node.client()?;
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let () = conn.set("k", "v").await?;

    node.pause()?;
    assert_eq!(node.state(), ProcessState::Paused);
    let stalled = tokio::time::timeout(
        Duration::from_millis(300),
        conn.get::<_, Option<String>>("k"),
    )
    .await;
    assert!(stalled.is_err(), "a paused server answered: {stalled:?}");
    // The kernel still completes TCP connects for a stopped process.
    let connect = tokio::time::timeout(
        Duration::from_secs(1),
        tokio::net::TcpStream::connect(node.socket_addr()),
    )
    .await?;
    assert!(connect.is_ok());

    node.resume()?;
    let value: Option<String> = conn.get("k").await?;
    assert_eq!(value.as_deref(), Some("v"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_refuses_and_cannot_be_paused() -> TestResult {
    let server = Standalone::start().await?;
    let node = server.node();
    node.kill()?;
    assert_eq!(node.state(), ProcessState::Killed);
    assert_eq!(node.pid(), None);
    assert!(node.query::<String>(&["PING"]).await.is_err());
    let Err(err) = node.pause() else {
        panic!("paused a killed node");
    };
    assert!(err.to_string().contains("it was killed"), "{err}");
    // Killing twice is fine.
    node.kill()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_writes_show_up_on_replicas() -> TestResult {
    let topology = Replicated::start(2).await?;
    assert_eq!(topology.replicas().len(), 2);
    assert_eq!(topology.nodes().count(), 3);
    let () = topology
        .master()
        .query(&["SET", "replicated", "yes"])
        .await?;
    topology
        .wait_for_replication(Duration::from_secs(10))
        .await?;
    for replica in topology.replicas() {
        let value: Option<String> = replica.query(&["GET", "replicated"]).await?;
        assert_eq!(value.as_deref(), Some("yes"), "on {replica}");
        let role: String = replica.query(&["INFO", "replication"]).await?;
        assert!(role.contains("role:slave"), "{role}");
    }
    Ok(())
}

#[test]
fn reserved_ports_are_distinct_and_held() -> TestResult {
    let reservations = (0..64)
        .map(|_| reserve_port())
        .collect::<Result<Vec<_>, _>>()?;
    let ports: HashSet<u16> = reservations.iter().map(|r| r.port()).collect();
    assert_eq!(ports.len(), reservations.len());
    for port in &ports {
        assert!(redis_resilience_testkit::PORT_RANGE.contains(port));
        assert!(std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok());
    }
    // While held, no further reservation hands them out.
    let more = (0..64)
        .map(|_| reserve_port())
        .collect::<Result<Vec<_>, _>>()?;
    assert!(more.iter().all(|r| !ports.contains(&r.port())));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_guard_serialises_holders() -> TestResult {
    let busy = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let busy = Arc::clone(&busy);
        tasks.push(tokio::spawn(async move {
            let _guard = failover_guard().await?;
            assert!(!busy.swap(true, Ordering::SeqCst), "two holders at once");
            tokio::time::sleep(Duration::from_millis(10)).await;
            busy.store(false, Ordering::SeqCst);
            Ok::<_, redis_resilience_testkit::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    // A panic while holding it does not break later users.
    let panicked = tokio::spawn(async {
        let _guard = failover_guard().await;
        panic!("test failure while holding the guard");
    })
    .await;
    assert!(panicked.is_err());
    let _again = tokio::time::timeout(Duration::from_secs(5), failover_guard()).await??;
    Ok(())
}
