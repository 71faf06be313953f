//! RedisService against a real 3+3 Redis Cluster: routing by slot, split
//! multi-key commands, replica reads, a slot migration (ASK, then MOVED once),
//! a dead primary, a dead shard, and bad input.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use redis::Value;
use redis_resilience_core::slot::key_slot;
use redis_resilience_core::{
    Error, ErrorKind, NodeAddr, ReadFrom, Request, Response, Route, Sent, ServedBy, Topology,
};
use redis_resilience_service::RedisService;
use redis_resilience_testkit::{Cluster, Node, Standalone, failover_guard};
use tower::ServiceExt;

async fn cluster(primaries: usize, replicas: usize) -> Cluster {
    Cluster::start(primaries, replicas)
        .await
        .unwrap_or_else(|err| panic!("cannot start the cluster: {err}"))
}

async fn connect(cluster: &Cluster) -> RedisService {
    RedisService::builder()
        .connect_timeout(Duration::from_millis(300))
        .response_timeout(Duration::from_millis(500))
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(100))
        .cluster(cluster.nodes().iter().take(2).map(Node::addr))
        .await
        .expect("cluster service")
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

fn addr(node: &Node) -> NodeAddr {
    NodeAddr::parse(node.addr()).expect("node address")
}

fn primary_of(response: &Response) -> NodeAddr {
    match &response.served_by {
        ServedBy::Primary(Some(addr)) => addr.clone(),
        other => panic!("expected a primary, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_slot_splits_multi_key_commands_and_reads_replicas() {
    let cluster = cluster(3, 1).await;
    let redis = connect(&cluster).await;

    // Keys over every shard land on the slot's owner and read back.
    let mut owners = HashSet::new();
    for i in 0..60 {
        let key = format!("key:{i}");
        let set = call(&redis, cmd(&["SET", &key, &i.to_string()]))
            .await
            .expect("SET");
        let owner = cluster
            .slot_owner(key_slot(key.as_bytes()))
            .await
            .expect("owner");
        assert_eq!(primary_of(&set), addr(owner), "{key}");
        owners.insert(primary_of(&set));
        let get = call(&redis, cmd(&["GET", &key])).await.expect("GET");
        assert_eq!(get.value, Value::BulkString(i.to_string().into_bytes()));
    }
    assert_eq!(owners.len(), 3, "keys should spread over all three shards");

    // Hash-tagged keys share a node; a same-slot MGET is one command.
    let a = call(&redis, cmd(&["SET", "{user:7}:name", "Ada"]))
        .await
        .expect("SET");
    let b = call(&redis, cmd(&["SET", "{user:7}:mail", "ada@x"]))
        .await
        .expect("SET");
    assert_eq!(primary_of(&a), primary_of(&b));

    // 1000 keys across slots: MSET, MGET, EXISTS, DEL agree with per-key commands.
    let keys: Vec<String> = (0..1000).map(|i| format!("bulk:{i}")).collect();
    let mut mset = vec!["MSET".to_owned()];
    for (i, key) in keys.iter().enumerate() {
        mset.push(key.clone());
        mset.push(format!("v{i}"));
    }
    let mset: Vec<&str> = mset.iter().map(String::as_str).collect();
    assert_eq!(
        call(&redis, cmd(&mset)).await.expect("MSET").value,
        Value::Okay
    );
    // Every third key deleted one by one, so the bulk answers have gaps.
    for key in keys.iter().step_by(3) {
        call(&redis, cmd(&["DEL", key])).await.expect("DEL");
    }
    let mut mget = vec!["MGET"];
    mget.extend(keys.iter().map(String::as_str));
    let Value::Array(values) = call(&redis, cmd(&mget)).await.expect("MGET").value else {
        panic!("MGET is not an array");
    };
    assert_eq!(values.len(), keys.len());
    for (key, value) in keys.iter().zip(&values) {
        let single = call(&redis, cmd(&["GET", key])).await.expect("GET").value;
        assert_eq!(&single, value, "{key}");
    }
    let mut exists = vec!["EXISTS"];
    exists.extend(keys.iter().map(String::as_str));
    let present = keys.len() - keys.iter().step_by(3).count();
    assert_eq!(
        call(&redis, cmd(&exists)).await.expect("EXISTS").value,
        Value::Int(present as i64)
    );
    let mut del = vec!["DEL"];
    del.extend(keys.iter().map(String::as_str));
    assert_eq!(
        call(&redis, cmd(&del)).await.expect("DEL").value,
        Value::Int(present as i64)
    );

    // Other cross-slot commands and pipelines are refused before sending.
    let err = call(&redis, cmd(&["SUNION", "a", "b"]))
        .await
        .expect_err("cross slot");
    assert_eq!((err.kind(), err.sent()), (&ErrorKind::CrossSlot, Sent::No));
    let mut pipe = redis::pipe();
    pipe.cmd("GET").arg("a").cmd("GET").arg("b");
    let err = call(&redis, Request::pipeline(pipe))
        .await
        .expect_err("cross-slot pipeline");
    assert_eq!((err.kind(), err.sent()), (&ErrorKind::CrossSlot, Sent::No));
    let mut pipe = redis::pipe();
    pipe.cmd("SET").arg("{p}a").arg(1).cmd("INCR").arg("{p}a");
    let same_slot = call(&redis, Request::pipeline(pipe))
        .await
        .expect("same-slot pipeline");
    assert_eq!(
        same_slot.value,
        Value::Array(vec![Value::Okay, Value::Int(2)])
    );

    // Keyless commands: diagnostics go to any primary; shard-wide ones are
    // refused unless sent to each primary by address.
    assert_eq!(
        call(&redis, cmd(&["PING"])).await.expect("PING").value,
        Value::SimpleString("PONG".into())
    );
    let err = call(&redis, cmd(&["KEYS", "*"])).await.expect_err("KEYS");
    assert_eq!((err.kind(), err.sent()), (&ErrorKind::Config, Sent::No));
    assert!(err.to_string().contains("every primary"), "{err}");
    let mut total = 0;
    for primary in redis.topology().primaries() {
        let size = call(&redis, cmd(&["DBSIZE"]).with_route(Route::Node(primary)))
            .await
            .expect("DBSIZE per primary");
        let Value::Int(n) = size.value else {
            panic!("DBSIZE is not an integer");
        };
        total += n;
    }
    assert_eq!(total, 60 + 2 + 1, "keys written by this test");

    // Replica reads go to a replica of the key's shard (in READONLY mode).
    let owner = cluster.slot_owner(key_slot(b"key:1")).await.expect("owner");
    let replica = addr(&cluster.replicas_of(owner)[0]);
    // A replica still loading when the map was read is not used; asking for
    // one triggers a refresh that finds it.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let read = cmd(&["GET", "key:1"]).with_route(Route::Replica(ReadFrom::LowestLag));
        let response = match call(&redis, read).await {
            Err(err)
                if err.kind() == &ErrorKind::NoReplicaAvailable && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            other => other.expect("replica read"),
        };
        assert_eq!(response.served_by, ServedBy::Replica(Some(replica.clone())));
        if response.value == Value::BulkString(b"1".to_vec()) {
            break;
        }
        assert!(Instant::now() < deadline, "replica never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // What the topology says matches the cluster.
    let view = redis.topology();
    assert_eq!(view.node_for(&cmd(&["GET", "key:1"])), Some(addr(owner)));
    assert_eq!(view.replicas_of(&addr(owner)), vec![replica]);
    let health = redis.cluster_health().expect("cluster health");
    assert!(health.state_ok);
    assert_eq!((health.slots_assigned, health.slots_ok), (16384, 16384));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_migration_surfaces_ask_then_moved_once_and_then_goes_straight() {
    let cluster = cluster(3, 0).await;
    let redis = connect(&cluster).await;
    let key = "foo";
    let slot = key_slot(key.as_bytes());
    call(&redis, cmd(&["SET", key, "v"])).await.expect("SET");
    let source = cluster.slot_owner(slot).await.expect("owner");
    let target = cluster
        .primaries()
        .iter()
        .find(|node| node.addr() != source.addr())
        .expect("another primary");
    let migration = cluster
        .slot_migration(slot, target)
        .await
        .expect("migration");

    migration.begin().await.expect("step 1");
    // Not moved yet: the source still answers.
    let get = call(&redis, cmd(&["GET", key]))
        .await
        .expect("GET during step 1");
    assert_eq!(primary_of(&get), addr(source));

    migration.move_keys().await.expect("step 2");
    let err = call(&redis, cmd(&["GET", key])).await.expect_err("ASK");
    assert_eq!(
        err.kind(),
        &ErrorKind::Ask {
            slot,
            addr: addr(target)
        }
    );
    // ASKING + the command on the target's connection gets the value.
    let asked = call(
        &redis,
        cmd(&["GET", key]).with_route(Route::Asking(addr(target))),
    )
    .await
    .expect("ASKING GET");
    assert_eq!(asked.value, Value::BulkString(b"v".to_vec()));
    assert!(
        redis.cluster_health().is_some(),
        "cluster health is available during a migration"
    );

    migration.finish().await.expect("step 3");
    let err = call(&redis, cmd(&["GET", key])).await.expect_err("MOVED");
    assert_eq!(
        err.kind(),
        &ErrorKind::Moved {
            slot,
            addr: addr(target)
        }
    );
    // The slot was patched at once: the next request goes straight to the new owner.
    for _ in 0..5 {
        let get = call(&redis, cmd(&["GET", key]))
            .await
            .expect("GET after MOVED");
        assert_eq!(primary_of(&get), addr(target));
        assert_eq!(get.value, Value::BulkString(b"v".to_vec()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_primary_its_replica_takes_over_and_writes_resume() {
    let _serial = failover_guard().await.expect("failover guard");
    let cluster = Cluster::builder(3, 1)
        .config("cluster-require-full-coverage", "no")
        .start()
        .await
        .unwrap_or_else(|err| panic!("cannot start the cluster: {err}"));
    let redis = connect(&cluster).await;
    let key = "resume:me";
    let victim = cluster
        .slot_owner(key_slot(key.as_bytes()))
        .await
        .expect("owner");
    let replica = addr(&cluster.replicas_of(victim)[0]);
    call(&redis, cmd(&["SET", key, "0"])).await.expect("SET");
    let mut other = None;
    for i in 0..100 {
        let candidate = format!("other:{i}");
        let owner = cluster
            .slot_owner(key_slot(candidate.as_bytes()))
            .await
            .expect("owner");
        if owner.addr() != victim.addr() {
            other = Some(candidate);
            break;
        }
    }
    let other = other.expect("a key of another shard");

    victim.kill().expect("kill -9");
    let killed_at = Instant::now();
    let mut errors = 0;
    let resumed = loop {
        assert!(
            killed_at.elapsed() < Duration::from_secs(15),
            "writes never resumed"
        );
        // The other shards keep answering throughout.
        let deadline = Instant::now() + Duration::from_millis(300);
        call(&redis, cmd(&["SET", &other, "x"]).with_deadline(deadline))
            .await
            .unwrap_or_else(|err| panic!("a live shard failed during the outage: {err}"));
        let deadline = Instant::now() + Duration::from_millis(300);
        match call(&redis, cmd(&["SET", key, "1"]).with_deadline(deadline)).await {
            Ok(response) => break (killed_at.elapsed(), primary_of(&response)),
            Err(err) => {
                assert!(
                    matches!(
                        err.kind(),
                        ErrorKind::Connect
                            | ErrorKind::Io
                            | ErrorKind::Timeout
                            | ErrorKind::ClusterDown
                            | ErrorKind::Moved { .. }
                    ),
                    "unexpected {err:?}"
                );
                errors += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    eprintln!(
        "writes resumed {:?} after kill -9 ({errors} errors meanwhile)",
        resumed.0
    );
    assert_eq!(
        resumed.1, replica,
        "the promoted replica should serve the slot"
    );
    // Keys of the other shards are served too.
    call(&redis, cmd(&["SET", &other, "x"]))
        .await
        .expect("other shard");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_shard_does_not_stop_the_others_and_never_loops() {
    let _serial = failover_guard().await.expect("failover guard");
    let cluster = Cluster::builder(3, 0)
        .config("cluster-require-full-coverage", "no")
        .start()
        .await
        .unwrap_or_else(|err| panic!("cannot start the cluster: {err}"));
    let redis = connect(&cluster).await;
    let dead = &cluster.primaries()[0];
    let dead_addr = addr(dead);
    let keys: Vec<String> = (0..60).map(|i| format!("k:{i}")).collect();
    let mut owner_of = Vec::new();
    for key in &keys {
        owner_of.push(primary_of(
            &call(&redis, cmd(&["SET", key, "v"])).await.expect("SET"),
        ));
    }
    dead.kill().expect("kill -9 a primary without replicas");

    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        for (key, owner) in keys.iter().zip(&owner_of) {
            let sent_at = Instant::now();
            let result = call(&redis, cmd(&["GET", key])).await;
            assert!(
                sent_at.elapsed() < Duration::from_millis(900),
                "a request hung"
            );
            if *owner == dead_addr {
                let err = result.expect_err("its shard is dead");
                assert!(
                    matches!(
                        err.kind(),
                        ErrorKind::Connect
                            | ErrorKind::Io
                            | ErrorKind::Moved { .. }
                            | ErrorKind::ClusterDown
                    ),
                    "{err:?}"
                );
            } else {
                let response =
                    result.unwrap_or_else(|err| panic!("{key} on a live shard failed: {err}"));
                assert_eq!(response.value, Value::BulkString(b"v".to_vec()));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_error() {
    let err = RedisService::cluster(Vec::<String>::new())
        .await
        .expect_err("empty");
    assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
    let err = RedisService::cluster(["not an address"])
        .await
        .expect_err("bad address");
    assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
    let err = RedisService::cluster(["redis://127.0.0.1:7000/3"])
        .await
        .expect_err("database 3");
    assert_eq!(err.kind(), &ErrorKind::Config, "{err}");

    let standalone = Standalone::start()
        .await
        .unwrap_or_else(|err| panic!("cannot start redis-server: {err}"));
    let err = RedisService::cluster([standalone.addr()])
        .await
        .expect_err("not a cluster");
    assert_eq!(err.kind(), &ErrorKind::Config, "{err}");

    let unused = redis_resilience_testkit::reserve_port().expect("port");
    let started = Instant::now();
    let err = RedisService::builder()
        .connect_timeout(Duration::from_millis(300))
        .cluster([format!("127.0.0.1:{}", unused.port())])
        .await
        .expect_err("nothing listens");
    assert_eq!(
        (err.kind(), err.sent()),
        (&ErrorKind::Connect, Sent::No),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_and_address_mapping_work_for_every_node() {
    let cluster = cluster(3, 0).await;
    // Every node requires a password from now on.
    for node in cluster.nodes() {
        let _: String = node
            .query(&["CONFIG", "SET", "requirepass", "cluster-pass"])
            .await
            .expect("requirepass");
    }
    // Each node is reached through a proxy: announced address → proxy address.
    let mut proxies = Vec::new();
    let mut routes = std::collections::HashMap::new();
    for node in cluster.nodes() {
        let proxy = redis_resilience_testkit::ChaosProxy::start(node.addr())
            .await
            .expect("proxy");
        routes.insert(
            addr(node),
            NodeAddr::parse(proxy.addr()).expect("proxy address"),
        );
        proxies.push(proxy);
    }
    let map = redis_resilience_service::AddressMap::new(move |announced: &NodeAddr| {
        routes
            .get(announced)
            .cloned()
            .unwrap_or_else(|| announced.clone())
    });
    let seed = proxies[0].addr().to_owned();

    let err = RedisService::builder()
        .address_map(map.clone())
        .cluster([seed.as_str()])
        .await
        .expect_err("no password");
    assert_eq!(err.kind(), &ErrorKind::Auth, "{err}");

    let redis = RedisService::builder()
        .credentials(redis_resilience_service::Credentials::password(
            "cluster-pass",
        ))
        .address_map(map)
        .cluster([seed.as_str()])
        .await
        .expect("password and address map");
    let mut owners = HashSet::new();
    for i in 0..30 {
        let key = format!("mapped:{i}");
        let set = call(&redis, cmd(&["SET", &key, "v"]))
            .await
            .expect("SET through a proxy");
        // Announced addresses stay the nodes' identity; only dialing is mapped.
        owners.insert(primary_of(&set));
    }
    assert_eq!(owners.len(), 3);
    for owner in &owners {
        assert!(
            cluster.nodes().iter().any(|n| addr(n) == *owner),
            "{owner} is not a node"
        );
    }
    // The traffic really goes through the mapped addresses: cut the proxies
    // and requests fail, although the nodes themselves are fine.
    for proxy in &proxies {
        proxy.toxics().refuse();
        proxy.toxics().reset_connections();
    }
    let err = call(&redis, cmd(&["GET", "mapped:1"]))
        .await
        .expect_err("proxies cut");
    assert!(
        matches!(err.kind(), ErrorKind::Connect | ErrorKind::Io),
        "{err:?}"
    );
}
