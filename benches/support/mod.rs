//! What `end_to_end` and `hot_key` share: settings from the environment, CPU
//! pinning, the runtime, the clients under test and the timing loop.

use std::future::Future;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use redis_resilience::{Error, Request, Response};
use tower::{Service, ServiceExt};

/// A setting from the environment, or `default`.
pub(crate) fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Whether the binary runs as `cargo bench` runs it (`--bench`), rather than
/// as `cargo test --benches` does (then: one short smoke pass).
pub(crate) fn bench_mode() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// The runtime the clients run on: current-thread unless `BENCH_RUNTIME=multi`.
pub(crate) fn runtime() -> (tokio::runtime::Runtime, &'static str) {
    let multi = std::env::var("BENCH_RUNTIME").is_ok_and(|flavour| flavour == "multi");
    let mut builder = if multi {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = builder.enable_all().build().expect("a tokio runtime");
    let flavour = if multi {
        "multi-thread (2 workers)"
    } else {
        "current-thread"
    };
    (runtime, flavour)
}

/// Pins every thread of process `pid` to `cpu` with `taskset`; false when
/// that failed (no `taskset`, one CPU).
pub(crate) fn pin(pid: u32, cpu: usize) -> bool {
    Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Whether to pin the client to CPU 0 and the servers to CPU 1: on a machine
/// with 2 CPUs or more, unless `BENCH_PIN=0`. Decided on the first call,
/// before the client pins itself (after that, the process sees one CPU).
pub(crate) fn pinning() -> bool {
    static PINNING: OnceLock<bool> = OnceLock::new();
    *PINNING.get_or_init(|| env_or("BENCH_PIN", 1) != 0 && cpus() >= 2)
}

/// The machine's CPUs, as the process saw them at the first call.
pub(crate) fn cpus() -> usize {
    static CPUS: OnceLock<usize> = OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Pins this process to CPU 0 when [`pinning`]; says whether it did.
pub(crate) fn pin_client() -> bool {
    pinning() && pin(std::process::id(), 0)
}

/// Pins the servers' processes to CPU 1; says what was done.
pub(crate) fn pin_servers(pids: impl IntoIterator<Item = Option<u32>>) -> &'static str {
    let mut all = true;
    for pid in pids {
        all &= pid.is_some_and(|pid| pin(pid, 1));
    }
    if all {
        "server(s) pinned to CPU 1"
    } else {
        "server pinning FAILED"
    }
}

/// One client under test.
pub(crate) trait Target: Clone + Send + 'static {
    /// Sends `cmd` and returns its reply.
    fn send(
        &mut self,
        cmd: redis::Cmd,
    ) -> impl Future<Output = Result<redis::Value, String>> + Send;
}

/// A redis-rs connection, used as redis-rs users do.
#[derive(Clone)]
pub(crate) struct Raw<C>(pub(crate) C);

impl<C> Target for Raw<C>
where
    C: redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn send(&mut self, cmd: redis::Cmd) -> Result<redis::Value, String> {
        cmd.query_async::<redis::Value>(&mut self.0)
            .await
            .map_err(|err| err.to_string())
    }
}

/// A tower service of [`Request`]s: `RedisService` alone or with layers.
#[derive(Clone)]
pub(crate) struct Svc<S>(pub(crate) S);

impl<S> Target for Svc<S>
where
    S: Service<Request, Response = Response, Error = Error> + Clone + Send + 'static,
    S::Future: Send,
{
    async fn send(&mut self, cmd: redis::Cmd) -> Result<redis::Value, String> {
        let service = self.0.ready().await.map_err(|err| err.to_string())?;
        service
            .call(Request::new(cmd))
            .await
            .map(|response| response.value)
            .map_err(|err| err.to_string())
    }
}

/// What one timed run of one variant measured.
#[derive(Debug, Default)]
pub(crate) struct Cell {
    pub(crate) ops: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) elapsed: Duration,
    /// Latency of each successful request, in ns.
    pub(crate) latencies: Vec<u64>,
}

impl Cell {
    /// Adds another run of the same variant.
    pub(crate) fn merge(&mut self, other: Self) {
        self.ops += other.ops;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
    }

    /// Requests per second.
    pub(crate) fn throughput(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `p`-th percentile latency in µs (sorts the samples).
    pub(crate) fn percentile_us(&mut self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        self.latencies.sort_unstable();
        let rank = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[rank] as f64 / 1_000.0
    }
}

/// Runs `tasks` tasks, each sending `command(task, n)` for its n-th request,
/// one at a time, until `duration` has passed.
pub(crate) async fn run_cell<T, F>(target: &T, tasks: usize, duration: Duration, command: F) -> Cell
where
    T: Target,
    F: Fn(usize, u64) -> redis::Cmd + Send + Sync + 'static,
{
    let command = Arc::new(command);
    let started = Instant::now();
    let deadline = started + duration;
    let mut set = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let mut target = target.clone();
        let command = Arc::clone(&command);
        set.spawn(async move {
            let mut cell = Cell {
                latencies: Vec::with_capacity(4096),
                ..Cell::default()
            };
            let mut n = 0;
            loop {
                let cmd = command(task, n);
                n += 1;
                let sent = Instant::now();
                let result = target.send(cmd).await;
                let now = Instant::now();
                match result {
                    Ok(_) => {
                        cell.ops += 1;
                        cell.latencies.push((now - sent).as_nanos() as u64);
                    }
                    Err(err) => {
                        cell.errors += 1;
                        cell.first_error.get_or_insert(err);
                    }
                }
                if now >= deadline {
                    break;
                }
            }
            cell
        });
    }
    let mut total = Cell::default();
    while let Some(cell) = set.join_next().await {
        total.merge(cell.expect("a bench task panicked"));
    }
    // Every task's runs overlap: the cell lasted from the start to the last one's end.
    total.elapsed = started.elapsed();
    total
}

/// The 100-byte value every SET writes.
pub(crate) const VALUE: [u8; 100] = [b'x'; 100];
