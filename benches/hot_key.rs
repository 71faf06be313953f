//! One hot key: 1 000 tasks reading the same key, each one request at a
//! time, through redis-rs, `RedisService` alone, and `CoalesceLayer` over
//! `RedisService`; the requests answered per second, and the GETs that
//! reached the server per second (counted by the server: `INFO
//! commandstats`).
//!
//! ```text
//! cargo bench --bench hot_key
//! BENCH_SECS=3 BENCH_ROUNDS=5 BENCH_HOT_TASKS=1000 cargo bench --bench hot_key
//! ```
//!
//! Settings (environment): `BENCH_SECS` per timed run (default 1),
//! `BENCH_ROUNDS` (3), `BENCH_HOT_TASKS` (1000), `BENCH_RUNTIME` (`current`
//! or `multi`), `BENCH_PIN=0` to not pin. The client is pinned to CPU 0 and
//! the server to CPU 1, the variants warmed up and interleaved, as in
//! `end_to_end`.

#![expect(clippy::print_stdout, reason = "a benchmark prints its results")]

mod support;

use std::time::Duration;

use redis_resilience::RedisService;
use redis_resilience::layers::CoalesceLayer;
use redis_resilience_testkit::Standalone;
use support::{Cell, Raw, Svc, Target, VALUE, env_or, run_cell};
use tower::Layer;

const KEY: &str = "hot:key";

fn get(_task: usize, _n: u64) -> redis::Cmd {
    redis::cmd("GET").arg(KEY).clone()
}

/// GETs the server has executed so far.
async fn server_gets(server: &Standalone) -> u64 {
    let info = server
        .node()
        .query::<String>(&["INFO", "commandstats"])
        .await
        .expect("INFO commandstats");
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0)
}

/// One timed run, and the GETs the server executed during it.
async fn timed<T: Target>(
    server: &Standalone,
    target: &T,
    tasks: usize,
    duration: Duration,
) -> (Cell, u64) {
    let before = server_gets(server).await;
    let cell = run_cell(target, tasks, duration, get).await;
    let after = server_gets(server).await;
    // The INFO call itself is not a GET.
    (cell, after.saturating_sub(before))
}

async fn hot_key(secs: f64, rounds: usize, tasks: usize) -> (String, Vec<String>) {
    let server = Standalone::start().await.expect("redis-server starts");
    let pinned = if support::pinning() {
        support::pin_servers([server.node().pid()])
    } else {
        "no pinning"
    };
    let client = redis::Client::open(server.url()).expect("a redis-rs client");
    let mut raw = Raw(client
        .get_multiplexed_async_connection()
        .await
        .expect("a multiplexed connection"));
    let redis = RedisService::standalone(server.addr())
        .await
        .expect("RedisService connects");
    let service = Svc(redis.clone());
    let coalesced = Svc(CoalesceLayer::new().layer(redis.clone()));
    raw.send(redis::cmd("SET").arg(KEY).arg(&VALUE[..]).clone())
        .await
        .expect("SET the hot key");

    let duration = Duration::from_secs_f64(secs);
    let names = [
        "redis-rs MultiplexedConnection",
        "RedisService",
        "CoalesceLayer → RedisService",
    ];
    let run = |which: usize, duration: Duration| {
        let (raw, service, coalesced, server) = (&raw, &service, &coalesced, &server);
        async move {
            match which {
                0 => timed(server, raw, tasks, duration).await,
                1 => timed(server, service, tasks, duration).await,
                _ => timed(server, coalesced, tasks, duration).await,
            }
        }
    };
    for which in 0..names.len() {
        run(which, duration / 3).await;
    }
    let mut cells: [(Cell, u64); 3] = Default::default();
    for round in 0..rounds {
        for k in 0..names.len() {
            let which = (k + round) % names.len();
            let (cell, upstream) = run(which, duration).await;
            cells[which].0.merge(cell);
            cells[which].1 += upstream;
        }
    }
    let raw_throughput = cells[0].0.throughput();
    let mut rows = Vec::new();
    for (name, (cell, upstream)) in names.into_iter().zip(cells.iter_mut()) {
        let upstream_per_sec = *upstream as f64 / cell.elapsed.as_secs_f64().max(1e-9);
        let errors = match &cell.first_error {
            Some(first) => format!("{} ({first})", cell.errors),
            None => cell.errors.to_string(),
        };
        rows.push(format!(
            "| {name} | {:.0} | {:.1} % | {:.0} | {:.1} | {:.0} | {:.0} | {errors} |",
            cell.throughput(),
            100.0 * cell.throughput() / raw_throughput,
            upstream_per_sec,
            cell.ops as f64 / (*upstream).max(1) as f64,
            cell.percentile_us(50.0),
            cell.percentile_us(99.0),
        ));
    }
    (pinned.to_owned(), rows)
}

fn main() {
    let bench = support::bench_mode();
    let (secs, rounds, tasks) = if bench {
        (
            env_or("BENCH_SECS", 1.0),
            env_or("BENCH_ROUNDS", 3),
            env_or("BENCH_HOT_TASKS", 1000),
        )
    } else {
        // `cargo test --benches`: a smoke run.
        (0.05, 1, 50)
    };
    let client_pinned = support::pin_client();
    let (runtime, flavour) = support::runtime();
    let (pinned, rows) = runtime.block_on(hot_key(secs, rounds, tasks));
    println!(
        "hot_key: {tasks} tasks reading one key of {} bytes, {flavour} tokio runtime, client {}, \
         {pinned}, {secs} s per run, {rounds} rounds",
        VALUE.len(),
        if client_pinned {
            "pinned to CPU 0"
        } else {
            "not pinned"
        },
    );
    println!();
    println!(
        "| client | requests/s | vs redis-rs | upstream GETs/s | requests per GET | p50 µs | p99 µs | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    for row in rows {
        println!("{row}");
    }
}
