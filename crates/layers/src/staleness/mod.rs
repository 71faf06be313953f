//! Serves the last good value of a read when Redis cannot answer:
//! [`StalenessLayer`] and [`Staleness`].
//!
//! Every successful read-only request (not blocking, with known keys) leaves
//! its value in a bounded local store ([quick_cache], weighted by an estimate
//! of each value's bytes), with the time its fetch started. When a later
//! identical request fails because Redis could not answer
//! ([`serves_stale_on`]: `Timeout`, `Io`, `Connect`, `CircuitOpen`,
//! `ClusterDown`, `MasterDown`, `Loading`, and `RateLimited`/`Secondary` from
//! a secondary store inside), the kept value is served if it is no older than
//! the budget, tagged [`ServedBy::Stale { age }`](redis_resilience_core::ServedBy::Stale).
//! A request's [`max_staleness`](redis_resilience_core::RequestOptions::max_staleness)
//! can only lower the budget, and an
//! [`authoritative`](redis_resilience_core::Request::authoritative) request
//! is never served a kept value. A semantic error (`WRONGTYPE`, `ERR …`) is
//! returned as it is, and so is the error when nothing current is kept.
//! Requests are identified by their packed command bytes (and by the node,
//! for a request routed to one).
//!
//! # Invalidation
//!
//! A value must not be served once the application changed it. Tell the
//! layer, by key:
//!
//! - [`StalenessLayer::invalidate`] (and [`invalidate_all`](StalenessLayer::invalidate_all));
//! - [`pubsub_invalidations`]: a pub/sub channel the application publishes
//!   changed keys to (`PUBLISH <channel> <key>`, one key per message);
//! - [`tracking_invalidations`]: RESP3 `CLIENT TRACKING` in broadcast mode,
//!   the server itself pushing the keys that changed (Redis 6+);
//! - any other [`Stream`](futures_util::Stream) of keys, through
//!   [`StalenessLayer::listen`].
//!
//! An invalidated key is authoritative-only until a read of it that started
//! after the invalidation succeeds: a per-key generation stops a fetch that
//! started before the invalidation from writing the old value back.
//!
//! Put it outside [`CoalesceLayer`](crate::CoalesceLayer) and the retry and
//! fallback layers, so that it only serves a kept value once they gave up.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use std::time::Duration;
//!
//! use redis_resilience_core::{Error, Request, Response, ServedBy};
//! use redis_resilience_layers::StalenessLayer;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let down = Arc::new(AtomicBool::new(false));
//! let redis = {
//!     let down = Arc::clone(&down);
//!     service_fn(move |_request: Request| {
//!         let down = down.load(Ordering::SeqCst);
//!         async move {
//!             if down {
//!                 Err(Error::connect("connection refused"))
//!             } else {
//!                 Ok(Response::new(redis::Value::Int(42), ServedBy::Primary(None)))
//!             }
//!         }
//!     })
//! };
//! let layer = StalenessLayer::new(Duration::from_secs(30));
//! let svc = layer.layer(redis);
//! let get = || Request::new(redis::cmd("GET").arg("visits").clone());
//!
//! svc.clone().oneshot(get()).await?;
//! down.store(true, Ordering::SeqCst);
//! let response = svc.clone().oneshot(get()).await?;
//! assert_eq!(response.value, redis::Value::Int(42));
//! assert!(matches!(response.served_by, ServedBy::Stale { .. }));
//!
//! layer.invalidate("visits");
//! assert!(svc.clone().oneshot(get()).await.is_err(), "never served once invalidated");
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! The inner service's errors, unchanged, whenever no current value within
//! the budget is kept (or the failure is not one that serves stale values).
//!
//! # Defaults
//!
//! Budget 60 s; at most 64 MiB kept; 100 000 recently invalidated keys
//! remembered one by one (past that an invalidation forgets everything); see
//! [`StalenessConfig`].
//!
//! # Metrics
//!
//! `redis_stale_served_total` and the histogram `redis_stale_age_seconds`.
//! Keys are never logged nor recorded.

mod cache;
mod config;
pub mod future;
mod invalidation;
mod layer;
mod service;

pub use config::{StalenessConfig, StalenessConfigBuilder, serves_stale_on};
pub use invalidation::{Invalidation, Invalidations, pubsub_invalidations, tracking_invalidations};
pub use layer::StalenessLayer;
pub use service::Staleness;
