//! What each layer costs on the success path, alone and as the full
//! recommended stack, over an in-memory service that answers at once: ns per
//! request. (Heap allocations per request: `benches/layer_allocations.rs`,
//! a binary of its own because a counting allocator slows every allocation
//! down, by about 35 ns per allocation and free here.)
//!
//! ```text
//! cargo bench --bench layer_overhead                     # criterion, then the summary table
//! cargo bench --bench layer_overhead -- --summary-only   # only the summary table (and the SVG)
//! LAYER_OVERHEAD_SVG=docs/layer-overhead.svg cargo bench --bench layer_overhead -- --summary-only
//! cargo bench --bench layer_overhead -- --profile-time 10 'layer_overhead/retry$'  # under a profiler
//! ```
//!
//! The process pins itself to CPU 0 (`taskset`; `BENCH_PIN=0` not to).
//!
//! The variants and how they are driven: `layer_variants/mod.rs`.
//!
//! Two passes:
//!
//! 1. criterion, one benchmark per variant (`layer_overhead/<variant>`),
//!    with its usual statistics (criterion's own command-line options
//!    apply: `--measurement-time 10`, a filter, …);
//! 2. a summary: the variants interleaved, round after round in a rotating
//!    order, the median ns per request of each and the overhead over `bare`
//!    (`bare/set` for writes), as a Markdown table. It writes an SVG chart
//!    of the overhead per layer to `$LAYER_OVERHEAD_SVG`, or
//!    `target/layer-overhead.svg`.

#![expect(clippy::print_stdout, reason = "a benchmark prints its results")]

mod layer_variants;

use std::fmt::Write as _;
use std::time::Duration;

use criterion::Criterion;
use layer_variants::{Variant, variants};

fn criterion_pass(variants: &mut [Variant]) {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args();
    let mut group = criterion.benchmark_group("layer_overhead");
    for variant in variants.iter_mut() {
        group.bench_function(variant.name, |b| b.iter_custom(&mut variant.run));
    }
    group.finish();
    criterion.final_summary();
}

struct Summary {
    name: &'static str,
    ns: f64,
    overhead_ns: f64,
    target_ns: Option<f64>,
    future_bytes: usize,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn summary_pass(variants: &mut [Variant], rounds: usize, batch: u64) -> Vec<Summary> {
    // Warm up every variant (caches, the staleness store, breaker maps).
    for variant in variants.iter_mut() {
        (variant.run)(batch);
    }
    let mut samples = vec![Vec::with_capacity(rounds); variants.len()];
    for round in 0..rounds {
        // Interleaved, and in a rotating order so no variant always runs
        // right after the same neighbour.
        for k in 0..variants.len() {
            let i = (k + round) % variants.len();
            let elapsed = (variants[i].run)(batch);
            samples[i].push(elapsed.as_nanos() as f64 / batch as f64);
        }
    }
    let ns: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
    let index = |name: &str| {
        variants
            .iter()
            .position(|v| v.name == name)
            .expect("the baseline is a variant")
    };
    variants
        .iter()
        .enumerate()
        .map(|(i, variant)| Summary {
            name: variant.name,
            ns: ns[i],
            overhead_ns: ns[i] - ns[index(variant.baseline)],
            target_ns: variant.target_ns,
            future_bytes: variant.future_bytes,
        })
        .collect()
}

fn print_summary(summary: &[Summary], rounds: usize, batch: u64, pinned: bool) {
    println!();
    println!(
        "layer overhead: median of {rounds} interleaved rounds of {batch} requests each, \
         current-thread tokio runtime, {}",
        if pinned {
            "pinned to CPU 0"
        } else {
            "not pinned"
        }
    );
    println!();
    println!("| variant | ns/request | overhead ns | target | response future bytes |");
    println!("|---|---:|---:|---|---:|");
    for s in summary {
        let target = s.target_ns.map_or_else(String::new, |target| {
            let met = s.overhead_ns <= target;
            format!("≤ {target:.0}: {}", if met { "met" } else { "**missed**" })
        });
        println!(
            "| {} | {:.1} | {:.1} | {target} | {} |",
            s.name, s.ns, s.overhead_ns, s.future_bytes
        );
    }
}

/// A horizontal bar chart of the overhead per layer, with the targets, on
/// a log scale (the layers cost tens of ns, the full stack thousands).
fn svg(summary: &[Summary], notes: &[String]) -> String {
    let bars: Vec<&Summary> = summary
        .iter()
        .filter(|s| s.name != "bare" && s.name != "bare/set")
        .collect();
    let max = bars
        .iter()
        .map(|s| s.overhead_ns.max(s.target_ns.unwrap_or(0.0)))
        .fold(100.0_f64, f64::max);
    // From 10 ns to the first 1-2-5 step above the largest bar, with room for its label.
    let decade = 10f64.powf((max * 1.3).log10().floor());
    let high = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|step| step * decade)
        .find(|&limit| limit >= max * 1.3)
        .unwrap_or(10.0 * decade);
    let low = 10.0_f64;
    let (left, right, top, row) = (200.0, 90.0, 56.0, 26.0);
    let width = 900.0;
    let plot = width - left - right;
    let bottom = top + row * bars.len() as f64;
    let height = bottom + 44.0 + 18.0 * notes.len() as f64;
    let x = |ns: f64| left + plot * (ns.clamp(low, high) / low).log10() / (high / low).log10();
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="white"/><text x="{left}" y="22" font-size="15" font-weight="bold">Overhead per request over the bare in-memory service</text><text x="{left}" y="40" fill="#555">median ns, log scale</text>"##
    );
    let mut decade = low;
    while decade <= high {
        for step in [1.0, 2.0, 5.0] {
            let tick = decade * step;
            if tick > high {
                break;
            }
            let tx = x(tick);
            let _ = writeln!(
                out,
                r##"<line x1="{tx:.1}" y1="{top}" x2="{tx:.1}" y2="{bottom:.1}" stroke="#ddd"/><text x="{tx:.1}" y="{:.1}" text-anchor="middle" fill="#555">{tick}</text>"##,
                bottom + 16.0
            );
        }
        decade *= 10.0;
    }
    for (i, s) in bars.iter().enumerate() {
        let y = top + row * i as f64;
        let over = s.target_ns.is_some_and(|t| s.overhead_ns > t);
        let color = if over { "#d9534f" } else { "#4a7ebb" };
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{left}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"/><text x="{:.1}" y="{:.1}">{:.0} ns</text>"#,
            left - 8.0,
            y + row * 0.65,
            s.name,
            y + 4.0,
            (x(s.overhead_ns) - left).max(1.0),
            row - 8.0,
            x(s.overhead_ns).max(s.target_ns.map_or(0.0, x)) + 6.0,
            y + row * 0.65,
            s.overhead_ns,
        );
        if let Some(target) = s.target_ns {
            let tx = x(target);
            let _ = writeln!(
                out,
                r##"<line x1="{tx:.1}" y1="{:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#222" stroke-width="2" stroke-dasharray="3,2"/>"##,
                y + 1.0,
                y + row - 1.0
            );
        }
    }
    let _ = writeln!(
        out,
        r##"<text x="{left}" y="{:.1}" fill="#555">Dashed: the target of issue 9; red: over it.</text>"##,
        bottom + 38.0
    );
    for (i, note) in notes.iter().enumerate() {
        let _ = writeln!(
            out,
            r##"<text x="{left}" y="{:.1}" fill="#555">{note}</text>"##,
            bottom + 56.0 + 18.0 * i as f64
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Pins this process to CPU 0 (`taskset`), as the end-to-end benches pin
/// their client, unless `BENCH_PIN=0` or on one CPU; says whether it did.
fn pin_to_cpu0() -> bool {
    let wanted = std::env::var("BENCH_PIN").map_or(true, |pin| pin != "0")
        && std::thread::available_parallelism().is_ok_and(|cpus| cpus.get() >= 2);
    wanted
        && std::process::Command::new("taskset")
            .args(["-a", "-p", "-c", "0", &std::process::id().to_string()])
            .output()
            .is_ok_and(|out| out.status.success())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let summary_only = args.iter().any(|a| a == "--summary-only");
    // `cargo test --benches` runs the binary without `--bench`: one quick pass.
    let test_mode = !args.iter().any(|a| a == "--bench") && !summary_only;
    let pinned = pin_to_cpu0();
    let mut variants = variants();
    if !summary_only {
        criterion_pass(&mut variants);
    }
    if args.iter().any(|a| a == "--profile-time") {
        // Profiling one variant (`-- --profile-time 10 <filter>`): no summary.
        return;
    }
    let (rounds, batch) = if test_mode { (1, 100) } else { (21, 20_000) };
    let summary = summary_pass(&mut variants, rounds, batch);
    print_summary(&summary, rounds, batch, pinned);
    if test_mode {
        return;
    }
    let path = std::env::var("LAYER_OVERHEAD_SVG")
        .unwrap_or_else(|_| "target/layer-overhead.svg".to_owned());
    let bare = summary.first().map_or(0.0, |s| s.ns);
    let bare_set = summary
        .iter()
        .find(|s| s.name == "bare/set")
        .map_or(0.0, |s| s.ns);
    let notes = [
        format!(
            "cargo bench --bench layer_overhead: current-thread tokio runtime, {}.",
            if pinned {
                "pinned to CPU 0"
            } else {
                "not pinned"
            }
        ),
        format!(
            "Median of {rounds} interleaved rounds of {batch} requests; \
             bare service: GET {bare:.0} ns, SET {bare_set:.0} ns per request."
        ),
    ];
    match std::fs::write(&path, svg(&summary, &notes)) {
        Ok(()) => println!("wrote {path}"),
        Err(err) => println!("could not write {path}: {err}"),
    }
}
