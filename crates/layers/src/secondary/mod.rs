//! Asks the application's secondary store when Redis could not answer a
//! read: [`SecondaryStoreLayer`] and [`SecondaryStore`].
//!
//! A read-only request of exactly one key, among the configured commands
//! (default `GET`), that fails because Redis could not answer
//! ([`falls_back_on`]: `Timeout`, `Io`, `Connect`, `CircuitOpen`,
//! `ClusterDown`, `MasterDown`, `Loading`) is answered by the loader instead,
//! tagged [`ServedBy::Secondary`](redis_resilience_core::ServedBy::Secondary).
//! The loader is any [`Service`](tower_service::Service) from [`Lookup`] to
//! `Option<redis::Value>`, or an async fn ([`SecondaryStoreLayer::from_fn`]);
//! `None` means the store has no such key, and is answered as nil.
//! Writes, pipelines and `authoritative` requests are never sent to it.
//!
//! Opt-in cache-aside ([`SecondaryStoreConfig::on_miss`]): when Redis
//! answers nil, the store is asked too, and a value found is written back
//! to Redis (`SET key value PX ttl NX`) before it is returned.
//!
//! An outage must not stampede the database:
//!
//! - identical lookups in flight share one call to the store (the call runs
//!   on its own task; callers that go away never fail the others, and the
//!   call is abandoned when all of them have);
//! - a [governor](https://docs.rs/governor) rate limit, shared by every
//!   clone of the layer, bounds the calls that reach the store; a caller
//!   over it gets `RateLimited { retry_after }` at once (or a stale value, if
//!   a [`StalenessLayer`](crate::StalenessLayer) sits outside);
//! - each call has its own timeout, and each caller still honours its
//!   request's deadline.
//!
//! Put it outermost (outside [`StalenessLayer`](crate::StalenessLayer), so
//! that kept values are tried before the database), or just inside a
//! `StalenessLayer` that should also cover rate-limited callers. Needs a tokio
//! runtime (calls to the store are spawned).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use redis_resilience_core::{Error, Request, Response, ServedBy};
//! use redis_resilience_layers::SecondaryStoreLayer;
//! use redis_resilience_layers::secondary::Lookup;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! // Redis is down.
//! let redis = service_fn(|_request: Request| async {
//!     Err::<Response, _>(Error::connect("connection refused"))
//! });
//! // The source of truth, e.g. `SELECT name FROM users WHERE id = $1`.
//! let layer = SecondaryStoreLayer::from_fn(|lookup: Lookup| async move {
//!     let name = match lookup.key() {
//!         b"user:42:name" => Some(redis::Value::BulkString(b"Ada".to_vec())),
//!         _ => None,
//!     };
//!     Ok::<_, std::io::Error>(name)
//! })
//! .timeout(Duration::from_millis(200));
//! let svc = layer.layer(redis);
//!
//! let response = svc
//!     .oneshot(Request::new(redis::cmd("GET").arg("user:42:name").clone()))
//!     .await?;
//! assert_eq!(response.value, redis::Value::BulkString(b"Ada".to_vec()));
//! assert_eq!(response.served_by, ServedBy::Secondary);
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! - [`ErrorKind::RateLimited`](redis_resilience_core::ErrorKind::RateLimited)
//!   when the rate limit refuses a new call to the store;
//! - [`ErrorKind::Secondary`](redis_resilience_core::ErrorKind::Secondary)
//!   when the loader fails (its error is the source) or exceeds the timeout;
//! - [`ErrorKind::Timeout`](redis_resilience_core::ErrorKind::Timeout) when
//!   the request's deadline passes while waiting for the store;
//! - otherwise the inner service's errors, unchanged.
//!
//! # Defaults
//!
//! Timeout 1 s; at most 100 calls a second (burst 100); `GET` only; no
//! cache-aside. See [`SecondaryStoreConfig`].
//!
//! # Metrics
//!
//! `redis_secondary_requests_total{outcome}`, one per request sent to the
//! secondary path: `found`, `not_found`, `error`, `timeout`, `rate_limited`,
//! `deadline`.

mod config;
pub mod future;
mod layer;
mod loader;
mod service;

pub use config::{SecondaryStoreConfig, SecondaryStoreConfigBuilder, falls_back_on};
pub use governor::Quota;
pub use layer::SecondaryStoreLayer;
pub use loader::{LoaderFn, Lookup};
pub use service::SecondaryStore;

/// The error type loaders' errors are converted to.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
