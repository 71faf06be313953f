//! [`CircuitBreakerLayer`]: stop sending to a node that is failing, probe it,
//! and let traffic back when it answers.
//!
//! Closed → Open → HalfOpen, over a time-based sliding window. While closed,
//! outcomes are counted per bucket; once the window holds enough calls, the
//! breaker opens when the share of failures, or of calls slower than a
//! latency SLO, reaches its threshold. Open, it fails calls at once with
//! `CircuitOpen { retry_after }` (`Sent::No`). After the open duration (which
//! doubles on consecutive re-opens, with jitter) it admits a few probes,
//! atomically across clones: all succeed → closed; one fails → open again.
//!
//! Only availability failures count (`Timeout`, `Io`, `Connect`, `Loading`,
//! `ClusterDown`, `MasterDown`): `MOVED`/`ASK`, semantic errors (`WRONGTYPE`,
//! `NOSCRIPT`, …) and callers that go away do not.
//!
//! Scope: one breaker for everything ([`CircuitBreakerLayer::new`]) or one
//! per node via the service's `Topology`
//! ([`CircuitBreakerLayer::per_node`]). Put it inside `ReplicaFallbackLayer`
//! so an open primary circuit sends reads to a replica at once, and outside
//! `RedirectLayer` so a reshard never trips it.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use redis_resilience_core::{Error, Request, Response, ServedBy};
//! use redis_resilience_layers::{CircuitBreakerConfig, CircuitBreakerLayer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let redis = service_fn(|_request: Request| async {
//!     Ok::<_, Error>(Response::new(redis::Value::Okay, ServedBy::Primary(None)))
//! });
//! let config = CircuitBreakerConfig::builder()
//!     .slow_call(Duration::from_millis(50), 0.5)
//!     .build()
//!     .map_err(Error::config)?;
//! let layer = CircuitBreakerLayer::new(config);
//! let svc = ServiceBuilder::new().layer(layer.clone()).service(redis);
//! svc.oneshot(Request::new(redis::cmd("PING").clone())).await?;
//! # Ok(()) }
//! ```
//!
//! # Errors
//!
//! `CircuitOpen { retry_after }` with `Sent::No` while open (or half-open
//! with every probe permit taken); otherwise the inner service's errors.
//!
//! # Metrics
//!
//! `redis_circuit_state{node}` (0 closed, 1 half-open, 2 open) and
//! `redis_circuit_transitions_total{node,to}`; `node` is the node's address,
//! or `all` for a global breaker.

mod config;
mod future;
mod layer;
mod service;
mod state;

pub use config::{CircuitBreakerConfig, CircuitBreakerConfigBuilder};
pub use future::ResponseFuture;
pub use layer::{CircuitBreakerHandle, CircuitBreakerLayer};
pub use service::CircuitBreaker;
pub use state::CircuitState;
