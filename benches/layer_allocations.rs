//! Heap allocations per request of each layer on the success path, alone and
//! as the full recommended stack: the variants of `layer_overhead`
//! (`layer_variants/mod.rs`), counted by a global allocator wrapper.
//!
//! ```text
//! cargo bench --bench layer_allocations
//! ```
//!
//! A binary of its own because counting slows every allocation down (two
//! sequentially consistent atomic increments per allocation and per free:
//! about 35 ns per allocation and free on the 2-core reference machine), which
//! would inflate `layer_overhead`'s timings of the layers that allocate.
//!
//! The workspace forbids `unsafe_code`, so the counting allocator is the
//! `stats_alloc` crate's, rather than an `unsafe impl GlobalAlloc` here.
//! Counted: allocations and reallocations, over 20 000 requests after a
//! warm-up of as many; the inner service allocates once per read (its
//! 100-byte reply), which `bare` counts too.

#![expect(clippy::print_stdout, reason = "a benchmark prints its results")]

mod layer_variants;

use std::alloc::System;

use layer_variants::variants;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() {
    // `cargo test --benches` runs the binary without `--bench`: a short pass.
    let batch = if std::env::args().any(|a| a == "--bench") {
        20_000
    } else {
        100
    };
    let mut variants = variants();
    let mut counted = Vec::with_capacity(variants.len());
    for variant in &mut variants {
        (variant.run)(batch);
        let region = Region::new(GLOBAL);
        (variant.run)(batch);
        let change = region.change();
        let allocations = (change.allocations + change.reallocations) as f64 / batch as f64;
        let bytes = change.bytes_allocated as f64 / batch as f64;
        counted.push((allocations, bytes));
    }
    let index = |name: &str| {
        variants
            .iter()
            .position(|v| v.name == name)
            .expect("the baseline is a variant")
    };
    println!("heap allocations per request, over {batch} requests after a warm-up");
    println!();
    println!(
        "| variant | allocs/request | extra allocs | extra bytes allocated | response future bytes | target |"
    );
    println!("|---|---:|---:|---:|---:|---|");
    for (i, variant) in variants.iter().enumerate() {
        let (allocations, bytes) = counted[i];
        let (base_allocations, base_bytes) = counted[index(variant.baseline)];
        let extra = allocations - base_allocations;
        // Issue 9: the ≤ 50 ns layers add no allocation on the success path.
        let target = match variant.target_ns {
            Some(target) if target <= 50.0 => {
                format!("0: {}", if extra < 0.001 { "met" } else { "**missed**" })
            }
            _ => String::new(),
        };
        println!(
            "| {} | {allocations:.2} | {extra:.2} | {:.0} | {} | {target} |",
            variant.name,
            bytes - base_bytes,
            variant.future_bytes,
        );
    }
}
