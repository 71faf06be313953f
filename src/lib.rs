//! Composable tower layers that keep a Rust service answering while Redis
//! fails over, reshards or hangs.
//!
//! A [`RedisService`] talks to standalone Redis, a Sentinel-managed master
//! (following a failover at once) or a Redis Cluster (routing by slot). The
//! [`layers`] wrap it, each doing one thing; a [`Client`] makes any stack a
//! redis-rs connection, so `redis::AsyncCommands` work unchanged. Every
//! [`Response`] says who answered ([`ServedBy`]); every [`Error`] says what
//! failed ([`ErrorKind`]) and whether the command may have run ([`Sent`]).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use redis::AsyncCommands;
//! use redis_resilience::prelude::*;
//! use tower::ServiceBuilder;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = RedisService::cluster(["127.0.0.1:7000"]).await?;
//! let svc = ServiceBuilder::new()
//!     .observe()
//!     .staleness(StalenessLayer::new(Duration::from_secs(30)))
//!     .coalesce(CoalesceLayer::new())
//!     .idempotent_retry(RetryPolicy::default())
//!     .replica_fallback()
//!     .circuit_breaker(CircuitBreakerLayer::per_node(redis.topology(), CircuitBreakerConfig::default()))
//!     .redirects()
//!     .service(redis);
//! let mut client = Client::new(svc).with_default_timeout(Duration::from_millis(200));
//! let name: Option<String> = client.get("user:42:name").await?;
//! # let _ = name;
//! # Ok(()) }
//! ```
//!
//! # The recommended order, and why
//!
//! Outermost first:
//!
//! | layer | why there |
//! |---|---|
//! | [`ObserveLayer`](layers::ObserveLayer) | sees what the caller sees: one span, the final outcome, the end-to-end latency |
//! | [`SecondaryStoreLayer`](layers::SecondaryStoreLayer) | asked only when everything below could not answer |
//! | [`StalenessLayer`](layers::StalenessLayer) | a kept value beats an error, but only after retries and fallbacks failed |
//! | [`CoalesceLayer`](layers::CoalesceLayer) | outside Retry, so one retry loop serves every waiter |
//! | [`RetryLayer`](layers::RetryLayer) | outside the breaker, so the breaker sees each attempt |
//! | [`ReplicaFallbackLayer`](layers::ReplicaFallbackLayer) | outside the breaker, so an open primary circuit sends reads to a replica at once |
//! | [`CircuitBreakerLayer`](layers::CircuitBreakerLayer) | per node, next to the service, so one sick shard never opens the circuit for the others |
//! | [`RedirectLayer`](layers::RedirectLayer) | innermost, so a reshard never costs a retry or trips a breaker |
//!
//! [`ServiceBuilderExt`] adds one method per layer to `tower::ServiceBuilder`;
//! [`presets`] builds the two common stacks (cache reads, critical writes)
//! from one shared set of layers.
//!
//! # Features
//!
//! One feature per layer, all on by default (`full`); turn `default-features`
//! off and pick the layers you use to build less.
//!
//! | feature | what it adds | extra dependencies |
//! |---|---|---|
//! | `full` (default) | every layer below | |
//! | `observe` | [`ObserveLayer`](layers::ObserveLayer) | |
//! | `secondary` | [`SecondaryStoreLayer`](layers::SecondaryStoreLayer) (implies `coalesce`) | governor |
//! | `staleness` | [`StalenessLayer`](layers::StalenessLayer) (implies `coalesce`) | quick_cache, futures-util |
//! | `coalesce` | [`CoalesceLayer`](layers::CoalesceLayer) | |
//! | `retry` | [`RetryLayer`](layers::RetryLayer) | |
//! | `replica-fallback` | [`ReplicaFallbackLayer`](layers::ReplicaFallbackLayer) | |
//! | `circuit-breaker` | [`CircuitBreakerLayer`](layers::CircuitBreakerLayer) | |
//! | `redirect` | [`RedirectLayer`](layers::RedirectLayer) | |
//! | `tls` (off) | TLS and mutual TLS to every node (rustls with ring) | rustls, tokio-rustls |
//!
//! [`presets`] needs every layer but the secondary store.
//!
//! # Minimum supported Rust version
//!
//! Rust 1.89.

#![forbid(unsafe_code)]

mod client;
mod ext;
pub mod prelude;
#[cfg(all(
    feature = "observe",
    feature = "staleness",
    feature = "coalesce",
    feature = "retry",
    feature = "replica-fallback",
    feature = "circuit-breaker",
    feature = "redirect"
))]
pub mod presets;

pub use client::Client;
pub use ext::ServiceBuilderExt;
pub use redis_resilience_core as core;
pub use redis_resilience_core::{
    Command, CommandInfo, Error, ErrorKind, KeySlot, NodeAddr, NodeHealth, ReadFrom, Request,
    RequestOptions, Response, Route, Sent, ServedBy, Topology,
};
pub use redis_resilience_layers as layers;
pub use redis_resilience_service::{
    AddressMap, ClusterHealth, Config, Credentials, RedisService, RedisServiceBuilder,
    RedisTopology, Tls,
};
