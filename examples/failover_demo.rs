//! The failover demo: a local Redis deployment, reads and writes through the
//! recommended stack, and a failure in the middle of the run.
//!
//! ```text
//! cargo run --release --example failover_demo                  # Sentinel: the master is killed
//! cargo run --release --example failover_demo -- --cluster      # Cluster: a slot migrates, a primary is killed
//! cargo run --release --example failover_demo -- --duration 8s  # a short run (CI)
//! ```
//!
//! Needs only `redis-server` on `PATH`: the testkit starts (and stops) every
//! process. Every 250 ms it prints who answered the reads (primary, replica,
//! kept value, errors) and how the writes fared, then a summary, and writes
//! the timeline as an SVG chart. The exit code is non-zero when a read was
//! lost or a kept value was older than its budget.

#![expect(clippy::print_stdout, reason = "a demo shows its timeline")]

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis_resilience::layers::{
    CircuitBreakerConfig, CircuitBreakerLayer, CoalesceLayer, ObserveLayer, RedirectLayer,
    ReplicaFallbackLayer, RetryLayer, RetryPolicy, StalenessLayer,
};
use redis_resilience::{Error, RedisService, Request, Response, ServedBy};
use redis_resilience_testkit::{Cluster, Sentinel};
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, ServiceExt};

type Stack = BoxCloneService<Request, Response, Error>;

const TICK: Duration = Duration::from_millis(250);
const READERS: usize = 4;
const KEYS: usize = 64;

/// What happened in one 250 ms slice.
#[derive(Debug, Clone, Copy, Default)]
struct Slice {
    primary: u32,
    replica: u32,
    stale: u32,
    secondary: u32,
    read_errors: u32,
    writes_ok: u32,
    writes_failed: u32,
}

impl Slice {
    fn reads(&self) -> u32 {
        self.primary + self.replica + self.stale + self.secondary
    }
}

#[derive(Debug, Default)]
struct Timeline {
    slices: Vec<Slice>,
    events: Vec<(usize, String)>,
    stale_over_budget: u32,
}

impl Timeline {
    fn slice(&mut self, at: Duration) -> &mut Slice {
        let index = (at.as_millis() / TICK.as_millis()) as usize;
        if self.slices.len() <= index {
            self.slices.resize(index + 1, Slice::default());
        }
        &mut self.slices[index]
    }
}

struct Options {
    duration: Duration,
    cluster: bool,
    svg: std::path::PathBuf,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        duration: Duration::from_secs(20),
        cluster: false,
        svg: std::path::PathBuf::from("target/failover_demo.svg"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cluster" => options.cluster = true,
            "--duration" => {
                let value = args.next().ok_or("--duration needs a value, e.g. 8s")?;
                let secs: f64 = value
                    .trim_end_matches('s')
                    .parse()
                    .map_err(|_| format!("--duration {value:?}: expected seconds, e.g. 8s"))?;
                if !(4.0..=600.0).contains(&secs) {
                    return Err("--duration must be between 4s and 600s".to_owned());
                }
                options.duration = Duration::from_secs_f64(secs);
            }
            "--svg" => options.svg = args.next().ok_or("--svg needs a path")?.into(),
            "-h" | "--help" => {
                return Err(
                    "usage: failover_demo [--cluster] [--duration 20s] [--svg PATH]".to_owned(),
                );
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(options)
}

/// How old a kept value may be when it is served.
const STALENESS_BUDGET: Duration = Duration::from_secs(5);

/// The recommended order for reads (DESIGN §5): Observe → Staleness →
/// Coalesce → Retry → ReplicaFallback → CircuitBreaker (per node) → Redirect
/// → service. (No secondary store: this demo has no database behind Redis.)
fn read_stack(redis: &RedisService) -> Stack {
    let breaker = CircuitBreakerConfig::builder()
        .minimum_calls(10)
        .open_duration(Duration::from_secs(1), Duration::from_secs(8))
        .build()
        .unwrap_or_default();
    BoxCloneService::new(
        ServiceBuilder::new()
            .layer(ObserveLayer::new())
            .layer(StalenessLayer::new(STALENESS_BUDGET))
            .layer(CoalesceLayer::new())
            .layer(RetryLayer::new(RetryPolicy::default()))
            .layer(ReplicaFallbackLayer::new())
            .layer(CircuitBreakerLayer::per_node(redis.topology(), breaker))
            .layer(RedirectLayer::new())
            .service(redis.clone()),
    )
}

/// Writes: idempotency-aware retry and the breaker; never a replica.
fn write_stack(redis: &RedisService) -> Stack {
    BoxCloneService::new(
        ServiceBuilder::new()
            .layer(ObserveLayer::new())
            .layer(RetryLayer::new(RetryPolicy::default()))
            .layer(CircuitBreakerLayer::per_node(
                redis.topology(),
                CircuitBreakerConfig::default(),
            ))
            .layer(RedirectLayer::new())
            .service(redis.clone()),
    )
}

fn key(i: usize) -> String {
    format!("demo:{i}")
}

/// The deployment, kept alive for the run; dropping it stops every process.
enum Deployment {
    Sentinel(Sentinel),
    Cluster(Cluster),
}

async fn start(cluster: bool) -> Result<(Deployment, RedisService), Box<dyn std::error::Error>> {
    let builder = RedisService::builder()
        .connect_timeout(Duration::from_millis(250))
        .response_timeout(Duration::from_millis(250))
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(200));
    if cluster {
        println!("starting a 3+3 Redis Cluster on loopback…");
        let topology = Cluster::builder(3, 1)
            .config("cluster-require-full-coverage", "no")
            .start()
            .await?;
        let redis = builder
            .cluster(topology.nodes().iter().map(|n| n.addr()))
            .await?;
        Ok((Deployment::Cluster(topology), redis))
    } else {
        println!("starting a master, 2 replicas and 3 sentinels on loopback…");
        let topology = Sentinel::start(2, 3).await?;
        let redis = builder
            .sentinel(topology.sentinel_addrs(), topology.master_name())
            .await?;
        Ok((Deployment::Sentinel(topology), redis))
    }
}

/// The faults, at their times; returns once all have been injected.
async fn inject_faults(
    deployment: &Deployment,
    started: Instant,
    duration: Duration,
    timeline: &Mutex<Timeline>,
) -> Result<(), Box<dyn std::error::Error>> {
    let event = |text: String| {
        let at = (started.elapsed().as_millis() / TICK.as_millis()) as usize;
        if let Ok(mut timeline) = timeline.lock() {
            timeline.events.push((at, text));
        }
    };
    match deployment {
        Deployment::Sentinel(topology) => {
            tokio::time::sleep_until((started + duration / 3).into()).await;
            let master = topology.initial_master();
            master.kill()?;
            event(format!("kill -9 master {}", master.addr()));
            let new = topology
                .wait_for_new_master(master, Duration::from_secs(20))
                .await?;
            event(format!("sentinels promoted {}", new.addr()));
        }
        Deployment::Cluster(topology) => {
            tokio::time::sleep_until((started + duration / 4).into()).await;
            let slot = redis_resilience::core::slot::key_slot(key(0).as_bytes());
            let source = topology.slot_owner(slot).await?;
            let target = topology
                .primaries()
                .iter()
                .find(|p| p.addr() != source.addr())
                .ok_or("no other primary")?;
            let moved = topology.migrate_slot(slot, target).await?;
            event(format!(
                "slot {slot} migrated to {} ({moved} keys)",
                target.addr()
            ));
            tokio::time::sleep_until((started + duration / 2).into()).await;
            let victim = topology
                .primaries()
                .iter()
                .find(|p| p.addr() != target.addr())
                .ok_or("no primary to kill")?;
            victim.kill()?;
            event(format!("kill -9 primary {}", victim.addr()));
            let promoted = topology
                .wait_for_promotion(victim, Duration::from_secs(20))
                .await?;
            event(format!("cluster promoted {}", promoted.addr()));
        }
    }
    Ok(())
}

fn bar(count: u32, scale: f64, glyph: char) -> String {
    let width = ((f64::from(count) * scale).ceil() as usize).min(40);
    std::iter::repeat_n(glyph, width).collect()
}

fn print_slice(index: usize, slice: &Slice, events: &[(usize, String)], progress: f64) {
    let scale = 24.0 / f64::from(slice.reads().max(1));
    let mut line = format!(
        "{:>6.2}s  reads {:>5}  {}{}{}{}  primary {:>4} replica {:>4} stale {:>3} secondary {:>3} errors {:>3} | writes ok {:>3} failed {:>3}",
        index as f64 * TICK.as_secs_f64(),
        slice.reads(),
        bar(slice.primary, scale, '█'),
        bar(slice.replica, scale, '▓'),
        bar(slice.stale, scale, '▒'),
        bar(slice.read_errors, scale, '✗'),
        slice.primary,
        slice.replica,
        slice.stale,
        slice.secondary,
        slice.read_errors,
        slice.writes_ok,
        slice.writes_failed,
    );
    let done = (progress * 20.0) as usize;
    let _ = write!(
        line,
        "  [{}{}]",
        "#".repeat(done),
        ".".repeat(20 - done.min(20))
    );
    println!("{line}");
    for (_, text) in events.iter().filter(|(at, _)| *at == index) {
        println!("          ── {text}");
    }
}

fn svg(timeline: &Timeline, title: &str) -> String {
    let slices = &timeline.slices;
    let (width, height, left, bottom) = (900.0, 360.0, 50.0, 40.0);
    let plot_w = width - left - 20.0;
    let plot_h = height - bottom - 40.0;
    let max = slices
        .iter()
        .map(|s| s.reads() + s.read_errors)
        .max()
        .unwrap_or(1)
        .max(1);
    let bar_w = plot_w / slices.len().max(1) as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{left}" y="20" font-size="14">{title}: reads per 250 ms by who answered</text>"#
    );
    for (i, slice) in slices.iter().enumerate() {
        let x = left + i as f64 * bar_w;
        let mut y = 30.0 + plot_h;
        for (count, colour) in [
            (slice.primary, "#2e7d32"),
            (slice.replica, "#1565c0"),
            (slice.stale, "#ef6c00"),
            (slice.secondary, "#6a1b9a"),
            (slice.read_errors, "#c62828"),
        ] {
            let h = f64::from(count) / f64::from(max) * plot_h;
            if h > 0.0 {
                y -= h;
                let _ = writeln!(
                    out,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{colour}"/>"#,
                    (bar_w - 1.0).max(1.0)
                );
            }
        }
    }
    for (at, text) in &timeline.events {
        let x = left + *at as f64 * bar_w;
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="30" x2="{x:.1}" y2="{:.1}" stroke="#000" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" font-size="10">{}</text>"##,
            30.0 + plot_h,
            x + 3.0,
            42.0 + 12.0
                * (timeline
                    .events
                    .iter()
                    .position(|(a, t)| a == at && t == text)
                    .unwrap_or(0) as f64),
            text.replace('<', "&lt;")
        );
    }
    let axis_y = 30.0 + plot_h;
    let _ = writeln!(
        out,
        r##"<line x1="{left}" y1="{axis_y}" x2="{:.1}" y2="{axis_y}" stroke="#333"/>"##,
        left + plot_w
    );
    let _ = writeln!(
        out,
        r#"<text x="{left}" y="{:.1}">0 s</text><text x="{:.1}" y="{:.1}" text-anchor="end">{:.1} s</text>"#,
        axis_y + 16.0,
        left + plot_w,
        axis_y + 16.0,
        slices.len() as f64 * TICK.as_secs_f64()
    );
    let _ = writeln!(out, r#"<text x="5" y="{:.1}">{max}</text>"#, 40.0);
    let legend = [
        ("primary", "#2e7d32"),
        ("replica", "#1565c0"),
        ("stale", "#ef6c00"),
        ("secondary", "#6a1b9a"),
        ("errors", "#c62828"),
    ];
    for (i, (name, colour)) in legend.iter().enumerate() {
        let x = left + 110.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="{:.1}" width="10" height="10" fill="{colour}"/><text x="{:.1}" y="{:.1}">{name}</text>"#,
            height - 14.0,
            x + 14.0,
            height - 5.0
        );
    }
    out.push_str("</svg>\n");
    out
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            println!("{message}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(&options).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(err) => {
            println!("failover demo failed: {err}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(options: &Options) -> Result<bool, Box<dyn std::error::Error>> {
    let (deployment, redis) = start(options.cluster).await?;
    let reads = read_stack(&redis);
    let writes = write_stack(&redis);
    for i in 0..KEYS {
        writes
            .clone()
            .oneshot(Request::new(redis::cmd("SET").arg(key(i)).arg(i).clone()))
            .await?;
    }
    let mode = if options.cluster {
        "cluster"
    } else {
        "sentinel"
    };
    println!(
        "running {mode} demo for {:?}: {READERS} readers, 1 writer; █ primary ▓ replica ▒ stale ✗ error\n",
        options.duration
    );

    let timeline = Arc::new(Mutex::new(Timeline::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut workers = Vec::new();
    for reader in 0..READERS {
        let (reads, timeline, stop) = (reads.clone(), Arc::clone(&timeline), Arc::clone(&stop));
        workers.push(tokio::spawn(async move {
            let mut i = reader;
            while !stop.load(Ordering::Relaxed) {
                let request = Request::new(redis::cmd("GET").arg(key(i % KEYS)).clone())
                    .with_deadline(Instant::now() + Duration::from_secs(2));
                i += READERS;
                let result = reads.clone().oneshot(request).await;
                let Ok(mut timeline) = timeline.lock() else {
                    return;
                };
                let slice = timeline.slice(started.elapsed());
                let mut over_budget = false;
                match result.as_ref().map(|r| &r.served_by) {
                    Ok(ServedBy::Primary(_)) => slice.primary += 1,
                    Ok(ServedBy::Replica(_)) => slice.replica += 1,
                    Ok(ServedBy::Stale { age }) => {
                        slice.stale += 1;
                        over_budget = *age > STALENESS_BUDGET;
                    }
                    Ok(_) => slice.secondary += 1,
                    Err(_) => slice.read_errors += 1,
                }
                timeline.stale_over_budget += u32::from(over_budget);
            }
        }));
    }
    {
        let (writes, timeline, stop) = (writes.clone(), Arc::clone(&timeline), Arc::clone(&stop));
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let request =
                    Request::new(redis::cmd("SET").arg(key(n as usize % KEYS)).arg(n).clone())
                        .with_deadline(Instant::now() + Duration::from_secs(1));
                let result = writes.clone().oneshot(request).await;
                if let Ok(mut timeline) = timeline.lock() {
                    let slice = timeline.slice(started.elapsed());
                    match result {
                        Ok(_) => slice.writes_ok += 1,
                        Err(_) => slice.writes_failed += 1,
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    let faults = {
        let timeline = Arc::clone(&timeline);
        let duration = options.duration;
        async move {
            inject_faults(&deployment, started, duration, &timeline)
                .await
                .map(|()| deployment)
        }
    };
    let printer = async {
        let mut printed = 0;
        while started.elapsed() < options.duration {
            tokio::time::sleep(TICK).await;
            let ready = (started.elapsed().as_millis() / TICK.as_millis()) as usize;
            let Ok(timeline) = timeline.lock() else {
                return;
            };
            while printed < ready.min(timeline.slices.len()) {
                let progress = started.elapsed().as_secs_f64() / options.duration.as_secs_f64();
                print_slice(
                    printed,
                    &timeline.slices[printed],
                    &timeline.events,
                    progress.min(1.0),
                );
                printed += 1;
            }
        }
    };
    let (deployment, ()) = tokio::join!(faults, printer);
    let deployment = deployment?;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await?;
    }
    drop(deployment);

    let timeline = timeline.lock().map_err(|_| "timeline lock poisoned")?;
    let total = timeline.slices.iter().fold(Slice::default(), |mut sum, s| {
        sum.primary += s.primary;
        sum.replica += s.replica;
        sum.stale += s.stale;
        sum.secondary += s.secondary;
        sum.read_errors += s.read_errors;
        sum.writes_ok += s.writes_ok;
        sum.writes_failed += s.writes_failed;
        sum
    });
    let failing: Vec<usize> = timeline
        .slices
        .iter()
        .enumerate()
        .filter(|(_, s)| s.writes_failed > 0)
        .map(|(i, _)| i)
        .collect();
    let write_outage = match (failing.first(), failing.last()) {
        (Some(first), Some(last)) => TICK * u32::try_from(last - first + 1).unwrap_or(u32::MAX),
        _ => Duration::ZERO,
    };
    let attempted = total.reads() + total.read_errors;
    println!("\n summary ({mode})");
    println!(" ┌──────────────────────────────┬────────────────┐");
    println!(
        " │ reads answered               │ {:>14} │",
        format!("{}/{attempted}", total.reads())
    );
    println!(" │   by the primary             │ {:>14} │", total.primary);
    println!(" │   by a replica               │ {:>14} │", total.replica);
    println!(" │   by a kept (stale) value    │ {:>14} │", total.stale);
    println!(
        " │ reads lost                   │ {:>14} │",
        total.read_errors
    );
    println!(
        " │ writes acknowledged          │ {:>14} │",
        total.writes_ok
    );
    println!(
        " │ writes failed                │ {:>14} │",
        total.writes_failed
    );
    println!(
        " │ writes failing for about     │ {:>12.2} s │",
        write_outage.as_secs_f64()
    );
    println!(
        " │ values older than budget     │ {:>14} │",
        timeline.stale_over_budget
    );
    println!(" └──────────────────────────────┴────────────────┘");

    if let Some(parent) = options.svg.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(
        &options.svg,
        svg(
            &timeline,
            &format!("redis-resilience failover demo ({mode})"),
        ),
    )?;
    println!("\n timeline chart written to {}", options.svg.display());

    let ok = total.read_errors == 0 && timeline.stale_over_budget == 0 && total.reads() > 0;
    if !ok {
        println!(
            " FAILED: {} reads lost, {} stale values over budget",
            total.read_errors, timeline.stale_over_budget
        );
    }
    Ok(ok)
}
