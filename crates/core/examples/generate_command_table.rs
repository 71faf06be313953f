//! Regenerates `src/command/table.rs` from a live server's `COMMAND` reply.
//!
//! ```text
//! cargo run -p redis-resilience-core --example generate_command_table            # starts a testkit server
//! cargo run -p redis-resilience-core --example generate_command_table -- --url redis://127.0.0.1:6379
//! ```
//!
//! Run it against a newer redis-server to follow new commands; the drift test
//! (`tests/command_table_live.rs`) fails until the table matches the server.
//! Idempotency is not generated: it lives in `src/command/idempotency.rs`.

#![expect(
    clippy::print_stdout,
    reason = "a command-line tool reports what it wrote"
)]

#[path = "../tools/command_info.rs"]
mod command_info;

use std::path::PathBuf;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut url = None;
    let mut out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/command/table.rs");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--url" => url = Some(args.next().ok_or("--url needs a value")?),
            "--out" => out = PathBuf::from(args.next().ok_or("--out needs a value")?),
            other => {
                return Err(
                    format!("unknown argument {other:?} (expected --url URL, --out PATH)").into(),
                );
            }
        }
    }

    // Keep the server alive until the table is read.
    let (_server, url) = match url {
        Some(url) => (None, url),
        None => {
            let server = redis_resilience_testkit::Standalone::start().await?;
            let url = server.url();
            (Some(server), url)
        }
    };
    let client = redis::Client::open(url.as_str())?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let version = command_info::server_version(&mut con).await?;
    let specs = command_info::fetch_commands(&mut con).await?;
    std::fs::write(&out, command_info::render_table(&version, &specs))?;
    println!(
        "wrote {} commands from redis-server {version} to {}",
        specs.len(),
        out.display()
    );
    Ok(())
}
