//! One upstream call per identical in-flight read: [`CoalesceLayer`] and
//! [`Coalesce`].
//!
//! When several callers send the same read-only request at the same time
//! (the same packed command bytes, the same [`Route`](redis_resilience_core::Route)
//! and the same `no_retry` option), only the first one (the leader) reaches
//! the inner service; the others (followers) wait for its answer. Every
//! waiter gets the same value, or the same [`Error`](redis_resilience_core::Error)
//! (errors are cheap to clone). Writes, blocking commands and
//! [`authoritative`](redis_resilience_core::Request::authoritative) reads
//! pass straight through.
//!
//! The upstream call (a *flight*) runs on a tokio task of its own, so:
//!
//! - a caller that goes away, the leader included, never fails or stalls the
//!   others: the flight carries on for them;
//! - when every waiter has gone, the flight is abandoned (its task is
//!   aborted, which drops the inner call);
//! - each waiter honours its own deadline, and the flight's request carries
//!   no deadline of its own (the inner service's per-attempt timeout still
//!   bounds it); a waiter whose deadline passes gets `Timeout`;
//! - the entry is removed from the in-flight map when the result is
//!   published, also when the inner service panics (the waiters then get an
//!   `Io` error);
//! - waiters sleep until the result is published: each is woken once.
//!
//! [`Coalesce::poll_ready`](tower_service::Service::poll_ready) is always
//! ready and reserves nothing in the inner service: a follower never calls
//! it. The flight (or a pass-through request) drives its own clone of the
//! inner service to readiness before calling it, so backpressure still
//! applies to what is actually sent.
//!
//! Put it inside [`StalenessLayer`](crate::StalenessLayer) and outside
//! [`RetryLayer`](crate::RetryLayer), so one retry loop serves every waiter.
//! Needs a tokio runtime (flights are spawned).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::time::Duration;
//!
//! use redis_resilience_core::{Error, Request, Response, ServedBy};
//! use redis_resilience_layers::CoalesceLayer;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let calls = Arc::new(AtomicUsize::new(0));
//! let counter = Arc::clone(&calls);
//! // Stands in for `RedisService`: a slow GET.
//! let redis = service_fn(move |_request: Request| {
//!     counter.fetch_add(1, Ordering::SeqCst);
//!     async {
//!         tokio::time::sleep(Duration::from_millis(20)).await;
//!         Ok::<_, Error>(Response::new(redis::Value::Int(42), ServedBy::Primary(None)))
//!     }
//! });
//! let layer = CoalesceLayer::new();
//! let svc = layer.layer(redis);
//! let get = || Request::new(redis::cmd("GET").arg("user:42:visits").clone());
//! let (a, b) = tokio::join!(svc.clone().oneshot(get()), svc.clone().oneshot(get()));
//! assert_eq!(a?.value, redis::Value::Int(42));
//! assert_eq!(b?.value, redis::Value::Int(42));
//! assert_eq!(calls.load(Ordering::SeqCst), 1, "one call served both");
//! assert_eq!(layer.in_flight(), 0);
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! Every waiter of a flight gets the inner service's error, unchanged (also
//! an error from its `poll_ready`). A waiter whose deadline passes first gets
//! [`ErrorKind::Timeout`](redis_resilience_core::ErrorKind::Timeout) with
//! [`Sent::Maybe`](redis_resilience_core::Sent::Maybe). If the inner service
//! panics during a flight, its waiters get
//! [`ErrorKind::Io`](redis_resilience_core::ErrorKind::Io) with `Sent::Maybe`.
//!
//! # Defaults
//!
//! Nothing to configure: every read-only, non-blocking, non-authoritative
//! request is coalesced.
//!
//! # Metrics
//!
//! `redis_coalesced_requests_total{role}`: `leader` (started a flight) or
//! `follower` (joined one).

pub(crate) mod flight;
pub mod future;
mod layer;
mod service;

pub use layer::CoalesceLayer;
pub use service::Coalesce;
