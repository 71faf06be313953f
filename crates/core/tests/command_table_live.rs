//! The static command table, key extraction and slot hashing, checked against
//! a real redis-server started by the testkit, so none of them can drift from
//! the server silently.

#[path = "../tools/command_info.rs"]
mod command_info;

use redis_resilience_core::Request;
use redis_resilience_core::command::{self, CommandInfo, KeyPositions};
use redis_resilience_core::slot::key_slot;
use redis_resilience_testkit::Standalone;

/// A standalone server with cluster mode on, so `CLUSTER KEYSLOT` answers.
async fn server() -> Standalone {
    match Standalone::builder()
        .config("cluster-enabled", "yes")
        .start()
        .await
    {
        Ok(server) => server,
        Err(err) => panic!("cannot start redis-server: {err}"),
    }
}

#[tokio::test]
async fn static_table_matches_the_live_command_reply() {
    let server = server().await;
    let mut con = server.node().connection().await.expect("connect");
    let version = command_info::server_version(&mut con).await.expect("INFO");
    let live = command_info::fetch_commands(&mut con)
        .await
        .expect("COMMAND");
    let table = command::commands();

    let mut problems = Vec::new();
    for spec in &live {
        match table.binary_search_by(|known| known.name.cmp(spec.name)) {
            Ok(i) if table[i] == *spec => {}
            Ok(i) => problems.push(format!(
                "{}: table {:?}\n  server {:?}",
                spec.name, table[i], spec
            )),
            Err(_) => problems.push(format!("{}: missing from the table", spec.name)),
        }
    }
    for known in table {
        if !live.iter().any(|spec| spec.name == known.name) {
            problems.push(format!(
                "{}: in the table, unknown to the server",
                known.name
            ));
        }
    }
    // The committed file is exactly what the generator writes (nobody edited it by hand).
    if version == command::SERVER_VERSION {
        let rendered = command_info::render_table(&version, &live);
        let committed = include_str!("../src/command/table.rs");
        if rendered != committed {
            problems.push("src/command/table.rs is not the generator's output".to_owned());
        }
    }
    assert!(
        problems.is_empty(),
        "the command table (generated from redis {}) differs from redis-server {version} in {} \
         entries; regenerate it with `cargo run -p redis-resilience-core --example \
         generate_command_table`:\n{}",
        command::SERVER_VERSION,
        problems.len(),
        problems.join("\n")
    );
}

/// An invocation of every command with made-up arguments, and hand-written
/// ones for the commands whose keys depend on their arguments.
fn invocations() -> Vec<Vec<Vec<u8>>> {
    let mut all: Vec<Vec<Vec<u8>>> = Vec::new();
    for spec in command::commands() {
        if spec.has_subcommands || spec.flags.contains(command::CommandFlags::MOVABLEKEYS) {
            continue;
        }
        let words: Vec<&str> = spec.name.split('|').collect();
        let argc = spec.arity.unsigned_abs() as usize;
        for extra in [0, 3] {
            if spec.arity > 0 && extra > 0 {
                continue;
            }
            let mut args: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
            while args.len() < argc + extra {
                args.push(format!("k{}", args.len()).into_bytes());
            }
            all.push(args);
        }
    }
    for line in [
        "EVAL s 2 a b c",
        "EVAL_RO s 1 a b",
        "EVALSHA s 0 a",
        "FCALL f 3 a b c d",
        "ZUNIONSTORE d 2 a b WEIGHTS 1 2",
        "ZINTER 2 a b",
        "ZDIFF 3 a b c WITHSCORES",
        "SINTERCARD 2 a b LIMIT 1",
        "LMPOP 2 a b LEFT COUNT 2",
        "BLMPOP 0 2 a b LEFT",
        "BZMPOP 1 1 a MIN",
        "XREAD COUNT 1 STREAMS a b 0 0",
        "XREADGROUP GROUP g c STREAMS a b > >",
        "SORT a BY w_* LIMIT 0 1 GET o_* STORE d",
        "SORT a STORE d",
        "SORT_RO a BY w_*",
        "GEORADIUS g 0 0 1 km STORE d",
        "GEORADIUSBYMEMBER g m 1 km STOREDIST d",
        "MIGRATE h 1 a 0 10",
        "MIGRATE h 1 \u{0} 0 10 COPY KEYS a b c",
        "MIGRATE h 1 \u{0} 0 10 AUTH p KEYS a b",
        "XADD s * f v",
        "OBJECT ENCODING a",
        "MEMORY USAGE a",
        "XINFO STREAM a",
        "SET a b",
        "BITFIELD a GET u8 0",
    ] {
        // `\0` stands for an empty argument.
        all.push(
            line.split(' ')
                .map(|w| {
                    if w == "\u{0}" {
                        Vec::new()
                    } else {
                        w.as_bytes().to_vec()
                    }
                })
                .collect(),
        );
    }
    all
}

#[tokio::test]
async fn keys_match_command_getkeys() {
    let server = server().await;
    let mut con = server.node().connection().await.expect("connect");
    let mut problems = Vec::new();
    let cases = invocations();
    for args in &cases {
        let mut getkeys = redis::cmd("COMMAND");
        getkeys.arg("GETKEYS");
        let mut cmd = redis::Cmd::new();
        for arg in args {
            getkeys.arg(arg.as_slice());
            cmd.arg(arg.as_slice());
        }
        let server_keys: Result<Vec<Vec<u8>>, _> = getkeys.query_async(&mut con).await;
        let request = Request::new(cmd);
        let ours: Vec<Vec<u8>> = request.keys().map(<[u8]>::to_vec).collect();
        let line = String::from_utf8_lossy(&args.join(&b' ')).into_owned();
        match server_keys {
            Ok(mut keys) => {
                let mut sorted = ours.clone();
                sorted.sort();
                keys.sort();
                if sorted != keys || request.info().key_positions() == &KeyPositions::Unknown {
                    problems.push(format!("{line}: server {keys:?}, ours {ours:?}"));
                }
            }
            // "The command has no key arguments", "Invalid arguments …":
            // then we must not invent keys either. One deliberate exception:
            // `PFMERGE dest` without sources is a valid command, but the
            // server's key-spec walk rejects the empty source range and
            // names no key; we route it by its destination.
            Err(err) => {
                if !ours.is_empty() && line != "pfmerge k1" {
                    problems.push(format!("{line}: server error {err}, ours {ours:?}"));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} invocations disagree with COMMAND GETKEYS:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
}

#[tokio::test]
async fn slots_match_cluster_keyslot() {
    let server = server().await;
    let mut con = server.node().connection().await.expect("connect");
    let keys: Vec<Vec<u8>> = vec![
        b"foo".to_vec(),
        b"".to_vec(),
        b"{user:42}:name".to_vec(),
        b"{}x".to_vec(),
        b"{{a}}".to_vec(),
        b"a{b}{c}".to_vec(),
        b"}{".to_vec(),
        b"{unclosed".to_vec(),
        vec![0xff, 0xfe, b'{', 0x80, b'}'],
        vec![0xc3, 0x28],
        "clé-ü".as_bytes().to_vec(),
        (0..=255u8).collect(),
    ];
    for key in &keys {
        let server_slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key.as_slice())
            .query_async(&mut con)
            .await
            .expect("CLUSTER KEYSLOT");
        assert_eq!(key_slot(key), server_slot, "key {key:?}");
        let info = CommandInfo::of(redis::cmd("GET").arg(key.as_slice()));
        assert_eq!(info.slot().single(), Some(server_slot));
    }
}
