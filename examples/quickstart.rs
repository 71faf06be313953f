//! Quickstart: start a throwaway redis-server, talk to it through a
//! `RedisService`, and show what redis-resilience knows about each command
//! before it is sent and who answered it.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//!
//! Needs only `redis-server` on `PATH` (or `REDIS_SERVER_BIN`).

#![expect(clippy::print_stdout, reason = "an example shows its results")]

use std::time::Duration;

use redis::AsyncCommands;
use redis_resilience::{Client, RedisService, Request};
use redis_resilience_testkit::Standalone;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Standalone::start().await?;
    println!("started redis-server on {}", server.addr());

    let redis = RedisService::standalone(&server.url()).await?;
    let mut client = Client::new(redis).with_default_timeout(Duration::from_millis(500));

    // redis-rs's AsyncCommands work over the service (and over any layer stack).
    let () = client.set("user:42:name", "Ada").await?;
    let name: Option<String> = client.get("user:42:name").await?;
    println!("GET user:42:name -> {name:?}");

    let commands = [
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
        "\n{:<10} {:>14} {:>9} {:>10}  outcome",
        "command", "slot", "read-only", "idempotent"
    );
    for cmd in commands {
        let request = Request::new(cmd);
        let info = request.info().clone();
        let slot = format!("{:?}", request.slot());
        let outcome = match client.send(request).await {
            Ok(response) => format!("{:?} from {:?}", response.value, response.served_by),
            Err(err) => format!(
                "error kind={} sent={:?}: {err}",
                err.kind().label(),
                err.sent()
            ),
        };
        // Only the command name is printed: keys can be personal data.
        println!(
            "{:<10} {slot:>14} {:>9} {:>10}  {outcome}",
            info.name(),
            info.is_readonly(),
            info.is_idempotent(),
        );
    }
    println!("\nthe server is stopped when this program ends");
    Ok(())
}
