//! Quickstart: start a throwaway redis-server, send a few commands, and show
//! what redis-resilience knows about each before it is sent.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//!
//! Needs only `redis-server` on `PATH` (or `REDIS_SERVER_BIN`).

#![expect(clippy::print_stdout, reason = "an example shows its results")]

use redis_resilience::{Error, Request};
use redis_resilience_testkit::Standalone;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Standalone::start().await?;
    println!("started redis-server on {}", server.addr());
    let client = redis::Client::open(server.url())?;
    let mut con = client.get_multiplexed_async_connection().await?;

    let commands = [
        redis::cmd("SET").arg("user:42:name").arg("Ada").clone(),
        redis::cmd("GET").arg("user:42:name").clone(),
        redis::cmd("INCR").arg("visits").clone(),
        redis::cmd("MGET")
            .arg("{user:42}:name")
            .arg("{user:42}:mail")
            .clone(),
        redis::cmd("SET")
            .arg("lock:job")
            .arg("me")
            .arg("NX")
            .arg("PX")
            .arg(30_000)
            .clone(),
        redis::cmd("LPUSH").arg("user:42:name").arg("oops").clone(),
    ];
    println!(
        "\n{:<34} {:>10} {:>9} {:>10}  reply",
        "command", "slot", "read-only", "idempotent"
    );
    for cmd in commands {
        let request = Request::new(cmd.clone());
        let info = request.info();
        let reply = match cmd.query_async::<redis::Value>(&mut con).await {
            Ok(value) => format!("{value:?}"),
            Err(err) => {
                let err = Error::from_redis(err, redis_resilience::Sent::Yes);
                format!(
                    "error kind={} sent={:?}: {err}",
                    err.kind().label(),
                    err.sent()
                )
            }
        };
        println!(
            "{:<34} {:>10} {:>9} {:>10}  {reply}",
            describe(&cmd),
            format!("{:?}", request.slot()),
            info.is_readonly(),
            info.is_idempotent(),
        );
    }
    println!("\nthe server is stopped when this program ends");
    Ok(())
}

/// The command as text. Only for this demo: real code never logs raw keys
/// unless the user opted in, since keys can be personal data.
fn describe(cmd: &redis::Cmd) -> String {
    cmd.args_iter()
        .map(|arg| match arg {
            redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            _ => "<cursor>".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}
