//! GET and SET of 100-byte values against real servers started by the
//! testkit, through (a) redis-rs itself, (b) `RedisService` alone, (c) the
//! "core stack" over it (Observe → Retry → ReplicaFallback → CircuitBreaker
//! → Redirect, the layers that neither keep nor fetch values) and (d) the
//! full recommended stack (SecondaryStore, Staleness and Coalesce too);
//! throughput and p50/p99 latency at 1, 16 and 64 concurrent tasks.
//!
//! - standalone: (a) is one redis-rs `MultiplexedConnection` shared by
//!   every task (clones);
//! - cluster (3 primaries, 1 replica each): (a) is redis-rs's own cluster
//!   client (`ClusterClient::get_async_connection`).
//!
//! ```text
//! cargo bench --bench end_to_end
//! BENCH_SECS=3 BENCH_ROUNDS=5 cargo bench --bench end_to_end     # longer
//! BENCH_DEPLOYMENTS=cluster BENCH_TASKS=64 cargo bench --bench end_to_end
//! BENCH_RUNTIME=multi cargo bench --bench end_to_end              # multi-thread runtime
//! ```
//!
//! Settings (environment): `BENCH_SECS` per timed run (default 0.5),
//! `BENCH_ROUNDS` (3), `BENCH_TASKS` (`1,16,64`), `BENCH_DEPLOYMENTS`
//! (`standalone,cluster`), `BENCH_RUNTIME` (`current`, or `multi`),
//! `BENCH_PIN=0` to not pin.
//!
//! Method (DESIGN §8): the bench process is pinned to CPU 0 and the
//! servers to CPU 1 (`taskset`); every variant is warmed up, then the
//! variants run one after the other, round after round, in a rotating
//! order; each task sends one request at a time, on keys of its own (so
//! `CoalesceLayer` has nothing to merge), until the run's time is up. The
//! table is Markdown, with each variant's throughput as a ratio to (a) from
//! the same run.

#![expect(clippy::print_stdout, reason = "a benchmark prints its results")]

mod support;

use std::future::Ready;
use std::time::Duration;

use redis_resilience::layers::secondary::{LoaderFn, Lookup};
use redis_resilience::layers::{
    CircuitBreakerConfig, CircuitBreakerLayer, CoalesceLayer, ObserveLayer, RedirectLayer,
    ReplicaFallbackLayer, RetryLayer, RetryPolicy, SecondaryStoreLayer, StalenessLayer,
};
use redis_resilience::{Error, RedisService, Request, Response};
use redis_resilience_testkit::{Cluster, Standalone};
use support::{Cell, Raw, Svc, Target, VALUE, env_or, run_cell};
use tower::{Service, ServiceBuilder};

/// Keys per task: a task cycles through its own.
const KEYS_PER_TASK: u64 = 64;

type Loader = LoaderFn<fn(Lookup) -> Ready<Result<Option<redis::Value>, std::io::Error>>>;

/// The secondary store: never asked while Redis answers.
fn no_secondary(_lookup: Lookup) -> Ready<Result<Option<redis::Value>, std::io::Error>> {
    std::future::ready(Ok(None))
}

/// The full recommended stack, outermost first: Observe → SecondaryStore →
/// Staleness → Coalesce → Retry → ReplicaFallback → CircuitBreaker (per
/// node) → Redirect → `RedisService`.
fn full_stack(
    redis: &RedisService,
) -> impl Service<Request, Response = Response, Error = Error, Future: Send> + Clone + Send + 'static
{
    let loader: Loader = LoaderFn::new(no_secondary as fn(Lookup) -> _);
    ServiceBuilder::new()
        .layer(ObserveLayer::new())
        .layer(SecondaryStoreLayer::new(loader))
        .layer(StalenessLayer::new(Duration::from_secs(60)))
        .layer(CoalesceLayer::new())
        .layer(RetryLayer::new(RetryPolicy::default()))
        .layer(ReplicaFallbackLayer::new())
        .layer(CircuitBreakerLayer::per_node(
            redis.topology(),
            CircuitBreakerConfig::default(),
        ))
        .layer(RedirectLayer::new())
        .service(redis.clone())
}

/// The stack without the layers that keep or fetch values (SecondaryStore,
/// Staleness, Coalesce): Observe → Retry → ReplicaFallback → CircuitBreaker
/// (per node) → Redirect → `RedisService`, as the failover demo runs it.
fn core_stack(
    redis: &RedisService,
) -> impl Service<Request, Response = Response, Error = Error, Future: Send> + Clone + Send + 'static
{
    ServiceBuilder::new()
        .layer(ObserveLayer::new())
        .layer(RetryLayer::new(RetryPolicy::default()))
        .layer(ReplicaFallbackLayer::new())
        .layer(CircuitBreakerLayer::per_node(
            redis.topology(),
            CircuitBreakerConfig::default(),
        ))
        .layer(RedirectLayer::new())
        .service(redis.clone())
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Get,
    Set,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Set => "SET",
        }
    }

    fn command(self) -> impl Fn(usize, u64) -> redis::Cmd + Send + Sync + 'static {
        move |task, n| {
            let key = format!("e2e:{task}:{}", n % KEYS_PER_TASK);
            match self {
                Self::Get => redis::cmd("GET").arg(key).clone(),
                Self::Set => redis::cmd("SET").arg(key).arg(&VALUE[..]).clone(),
            }
        }
    }
}

struct Settings {
    secs: f64,
    rounds: usize,
    tasks: Vec<usize>,
}

impl Settings {
    fn cell(&self) -> Duration {
        Duration::from_secs_f64(self.secs)
    }
}

/// The clients, whatever their types.
struct Variants<A, B, C, D> {
    raw: (&'static str, A),
    service: B,
    core: C,
    full: D,
}

/// How many clients [`Variants`] has.
const VARIANTS: usize = 4;

impl<A: Target, B: Target, C: Target, D: Target> Variants<A, B, C, D> {
    async fn run(&self, which: usize, tasks: usize, duration: Duration, op: Op) -> Cell {
        match which {
            0 => run_cell(&self.raw.1, tasks, duration, op.command()).await,
            1 => run_cell(&self.service, tasks, duration, op.command()).await,
            2 => run_cell(&self.core, tasks, duration, op.command()).await,
            _ => run_cell(&self.full, tasks, duration, op.command()).await,
        }
    }

    fn names(&self) -> [&'static str; VARIANTS] {
        [self.raw.0, "RedisService", "core stack", "full stack"]
    }

    /// Warm-up, then rounds of the variants interleaved; one table row per variant.
    async fn measure(&self, settings: &Settings, rows: &mut Vec<String>) {
        for op in [Op::Get, Op::Set] {
            for &tasks in &settings.tasks {
                for which in 0..VARIANTS {
                    self.run(which, tasks, settings.cell() / 3, op).await;
                }
                let mut cells: [Cell; VARIANTS] = Default::default();
                for round in 0..settings.rounds {
                    for k in 0..VARIANTS {
                        let which = (k + round) % VARIANTS;
                        let cell = self.run(which, tasks, settings.cell(), op).await;
                        cells[which].merge(cell);
                    }
                }
                let raw = cells[0].throughput();
                for (name, cell) in self.names().into_iter().zip(cells.iter_mut()) {
                    let errors = match &cell.first_error {
                        Some(first) => format!("{} ({first})", cell.errors),
                        None => cell.errors.to_string(),
                    };
                    rows.push(format!(
                        "| {} | {tasks} | {name} | {:.0} | {:.1} % | {:.0} | {:.0} | {errors} |",
                        op.name(),
                        cell.throughput(),
                        100.0 * cell.throughput() / raw,
                        cell.percentile_us(50.0),
                        cell.percentile_us(99.0),
                    ));
                }
            }
        }
    }
}

/// Sets every key a GET will read.
async fn prefill<T: Target>(target: &mut T, tasks: usize) {
    let set = Op::Set.command();
    for task in 0..tasks {
        for n in 0..KEYS_PER_TASK {
            target.send(set(task, n)).await.expect("prefill SET");
        }
    }
}

async fn standalone(settings: &Settings) -> (String, Vec<String>) {
    let server = Standalone::start().await.expect("redis-server starts");
    let pinned = if support::pinning() {
        support::pin_servers([server.node().pid()])
    } else {
        "no pinning"
    };
    let client = redis::Client::open(server.url()).expect("a redis-rs client");
    let connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("a multiplexed connection");
    let redis = RedisService::standalone(server.addr())
        .await
        .expect("RedisService connects");
    let mut variants = Variants {
        raw: ("redis-rs MultiplexedConnection", Raw(connection)),
        service: Svc(redis.clone()),
        core: Svc(core_stack(&redis)),
        full: Svc(full_stack(&redis)),
    };
    let most = settings.tasks.iter().copied().max().unwrap_or(1);
    prefill(&mut variants.raw.1, most).await;
    let mut rows = Vec::new();
    variants.measure(settings, &mut rows).await;
    (format!("standalone, {pinned}"), rows)
}

async fn cluster(settings: &Settings) -> (String, Vec<String>) {
    let cluster = Cluster::start(3, 1).await.expect("a 3+3 cluster starts");
    let pinned = if support::pinning() {
        support::pin_servers(cluster.nodes().iter().map(|node| node.pid()))
    } else {
        "no pinning"
    };
    let urls: Vec<String> = cluster.nodes().iter().map(|node| node.url()).collect();
    let client = redis::cluster::ClusterClient::new(urls).expect("a redis-rs cluster client");
    let connection = client
        .get_async_connection()
        .await
        .expect("a redis-rs cluster connection");
    let redis = RedisService::cluster(cluster.nodes().iter().map(|node| node.addr()))
        .await
        .expect("RedisService connects to the cluster");
    let mut variants = Variants {
        raw: ("redis-rs ClusterClient", Raw(connection)),
        service: Svc(redis.clone()),
        core: Svc(core_stack(&redis)),
        full: Svc(full_stack(&redis)),
    };
    let most = settings.tasks.iter().copied().max().unwrap_or(1);
    prefill(&mut variants.raw.1, most).await;
    let mut rows = Vec::new();
    variants.measure(settings, &mut rows).await;
    (format!("cluster 3+3, {pinned}"), rows)
}

fn main() {
    let bench = support::bench_mode();
    let settings = if bench {
        Settings {
            secs: env_or("BENCH_SECS", 0.5),
            rounds: env_or("BENCH_ROUNDS", 3),
            tasks: std::env::var("BENCH_TASKS")
                .unwrap_or_else(|_| "1,16,64".to_owned())
                .split(',')
                .filter_map(|tasks| tasks.trim().parse().ok())
                .collect(),
        }
    } else {
        // `cargo test --benches`: a smoke run.
        Settings {
            secs: 0.05,
            rounds: 1,
            tasks: vec![1, 4],
        }
    };
    let deployments =
        std::env::var("BENCH_DEPLOYMENTS").unwrap_or_else(|_| "standalone,cluster".to_owned());
    let client_pinned = support::pin_client();
    let (runtime, flavour) = support::runtime();
    println!(
        "end_to_end: {flavour} tokio runtime, client {}, {} s per run, {} rounds, \
         {} CPUs, keys of the tasks' own, values of {} bytes",
        if client_pinned {
            "pinned to CPU 0"
        } else {
            "not pinned"
        },
        settings.secs,
        settings.rounds,
        support::cpus(),
        VALUE.len(),
    );
    for deployment in deployments.split(',').map(str::trim) {
        let (title, rows) = match deployment {
            "standalone" => runtime.block_on(standalone(&settings)),
            "cluster" => runtime.block_on(cluster(&settings)),
            other => {
                println!("unknown deployment {other:?} (standalone, cluster)");
                continue;
            }
        };
        println!();
        println!("### {title}");
        println!();
        println!("| op | tasks | client | ops/s | vs redis-rs | p50 µs | p99 µs | errors |");
        println!("|---|---:|---|---:|---:|---:|---:|---|");
        for row in rows {
            println!("{row}");
        }
    }
}
