//! Command lookup, key extraction, slots and idempotency, offline (the live
//! comparison with a server is `command_table_live.rs`).

use redis_resilience_core::command::{self, CommandInfo, KeyPositions, KeySlot, idempotency};
use redis_resilience_core::slot::key_slot;
use redis_resilience_core::{Request, RequestOptions};

fn info(line: &str) -> CommandInfo {
    let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
    CommandInfo::of_args(&args)
}

fn keys(line: &str) -> Vec<String> {
    let mut cmd = redis::Cmd::new();
    for arg in line.split(' ') {
        cmd.arg(arg);
    }
    Request::new(cmd)
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect()
}

#[test]
fn table_covers_redis_7_0_and_is_sorted() {
    let all = command::commands();
    assert!(all.len() >= 360, "only {} commands", all.len());
    assert!(all.windows(2).all(|w| w[0].name < w[1].name));
    assert_eq!(command::SERVER_VERSION, "7.0.15");
}

#[test]
fn lookup_is_case_insensitive_and_resolves_subcommands() {
    assert_eq!(command::lookup(b"gEt", None).map(|s| s.name), Some("get"));
    assert_eq!(
        command::lookup(b"CONFIG", Some(b"Get")).map(|s| s.name),
        Some("config|get")
    );
    assert!(command::lookup(b"CONFIG", Some(b"nosuch")).is_none());
    assert!(command::lookup(b"CONFIG", None).is_none());
    assert!(command::lookup(b"", None).is_none());
    assert!(command::lookup(&[0xff, 0xfe], None).is_none());
}

#[test]
fn keys_follow_the_key_specs() {
    assert_eq!(keys("GET a"), ["a"]);
    assert_eq!(keys("MSET a 1 b 2 c 3"), ["a", "b", "c"]);
    assert_eq!(keys("MGET a b c"), ["a", "b", "c"]);
    assert_eq!(keys("EVAL script 2 k1 k2 arg"), ["k1", "k2"]);
    assert_eq!(
        keys("ZUNIONSTORE dst 2 s1 s2 WEIGHTS 1 2"),
        ["dst", "s1", "s2"]
    );
    assert_eq!(keys("XREAD COUNT 2 STREAMS s1 s2 0 0"), ["s1", "s2"]);
    assert_eq!(keys("SORT list BY w_* GET o_* STORE out"), ["list", "out"]);
    assert_eq!(keys("SORT list"), ["list"]);
    assert_eq!(keys("MIGRATE h 1  0 10 KEYS a b"), ["a", "b"]);
    assert_eq!(keys("MIGRATE h 1 k 0 10"), ["k"]);
    assert_eq!(keys("OBJECT ENCODING k"), ["k"]);
    assert_eq!(keys("PING"), Vec::<String>::new());
    // Too few arguments: the server refuses it; no keys, no panic.
    assert_eq!(keys("EVAL script 5 k1"), ["k1"]);
    assert_eq!(keys("EVAL script -1"), Vec::<String>::new());
}

#[test]
fn slots_of_requests() {
    assert_eq!(info("GET foo").slot(), KeySlot::Single(12182));
    assert_eq!(info("PING").slot(), KeySlot::NoKeys);
    assert_eq!(info("MGET a b").slot(), KeySlot::Cross);
    assert_eq!(
        info("MGET {u}a {u}b").slot(),
        KeySlot::Single(key_slot(b"u"))
    );
    // Sharded pub/sub routes by channel, although a channel is not a key.
    assert_eq!(
        info("SPUBLISH chan msg").slot(),
        KeySlot::Single(key_slot(b"chan"))
    );
    assert_eq!(
        info("SPUBLISH chan msg").key_positions(),
        &KeyPositions::None
    );
    assert_eq!(info("NOSUCH a").slot(), KeySlot::Unknown);
}

#[test]
fn idempotency_classification() {
    for idempotent in [
        "GET k",
        "SET k v",
        "SET k v EX 10",
        "DEL k",
        "HSET h f v",
        "EXPIRE k 10",
        "SADD s m",
        "ZADD z 1 m",
        "XADD s 1-1 f v",
        "EVAL_RO s 0",
        "PFADD h a",
        "MSET a 1 b 2",
    ] {
        assert!(
            info(idempotent).is_idempotent(),
            "{idempotent} should be idempotent"
        );
    }
    for not in [
        "INCR k",
        "INCRBY k 2",
        "DECR k",
        "APPEND k v",
        "LPUSH l v",
        "RPOP l",
        "ZINCRBY z 1 m",
        "HINCRBY h f 1",
        "XADD s * f v",
        "SPOP s",
        "GETDEL k",
        "PUBLISH c m",
        "EVAL s 0",
        "FCALL f 0",
        "MULTI",
        "EXEC",
        "SET k v NX",
        "SET k v GET",
        "ZADD z INCR 1 m",
        "NOSUCH k",
    ] {
        assert!(!info(not).is_idempotent(), "{not} should not be idempotent");
    }
    assert!(idempotency::non_idempotent_reason("incr").is_some());
    // Every listed command exists in the table.
    for (name, _) in idempotency::NON_IDEMPOTENT {
        let (cmd, sub) = match name.split_once('|') {
            Some((c, s)) => (c, Some(s.as_bytes())),
            None => (*name, None),
        };
        assert!(
            command::lookup(cmd.as_bytes(), sub).is_some(),
            "{name} not in table"
        );
    }
}

#[test]
fn pipelines_and_transactions() {
    let mut pipe = redis::pipe();
    pipe.cmd("GET").arg("{t}a").cmd("GET").arg("{t}b");
    let request = Request::pipeline(pipe.clone());
    assert!(request.info().is_readonly() && request.info().is_idempotent());
    assert_eq!(request.slot(), KeySlot::Single(key_slot(b"t")));
    assert_eq!(request.keys().count(), 2);
    assert_eq!(request.info().name(), "pipeline");

    pipe.cmd("SET").arg("x").arg("1");
    let request = Request::pipeline(pipe.clone());
    assert!(!request.info().is_readonly() && request.info().is_write());
    assert_eq!(request.slot(), KeySlot::Cross);

    let mut tx = redis::pipe();
    tx.atomic().cmd("SET").arg("a").arg("1");
    let request = Request::pipeline(tx);
    assert_eq!(request.info().name(), "transaction");
    assert!(!request.info().is_idempotent());
}

#[test]
fn request_options_only_tighten() {
    let now = std::time::Instant::now();
    let later = now + std::time::Duration::from_secs(5);
    let request = Request::new(redis::cmd("GET").arg("k").clone())
        .with_deadline(now)
        .with_deadline(later)
        .with_max_staleness(std::time::Duration::from_secs(1))
        .with_max_staleness(std::time::Duration::from_secs(9));
    assert_eq!(request.deadline(), Some(now));
    assert_eq!(
        request.options().max_staleness,
        Some(std::time::Duration::from_secs(1))
    );
    assert_eq!(
        request.options().authoritative,
        RequestOptions::default().authoritative
    );
    let overridden =
        Request::new(redis::cmd("EVAL").arg("return 1").arg(0).clone()).assume_idempotent(true);
    assert!(overridden.info().is_idempotent());
}
