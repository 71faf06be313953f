//! [`ReplicaFallbackLayer`]: when the primary cannot answer a read, ask a
//! healthy replica once.
//!
//! A read-only request that is not `authoritative`, routed to its primary
//! (`Route::Auto`), and that fails with `Connect`, `Timeout`, `Io`,
//! `CircuitOpen` or `MasterDown`, is sent again once with
//! `Route::Replica(read_from)` (default: the healthy replica with the lowest
//! lag). Writes are never re-routed. The response says
//! `ServedBy::Replica(..)`.
//!
//! Put it outside the circuit breaker: an open primary circuit then fails in
//! `call` at once, and the read goes to a replica without waiting for a timeout.
//!
//! # Example
//!
//! ```
//! use redis_resilience_core::{Error, Request, Response, Route, ServedBy};
//! use redis_resilience_layers::ReplicaFallbackLayer;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! // The primary refuses connections; replicas answer.
//! let redis = service_fn(|request: Request| async move {
//!     match request.route() {
//!         Route::Replica(_) => Ok(Response::new(redis::Value::Nil, ServedBy::Replica(None))),
//!         _ => Err(Error::connect("connection refused")),
//!     }
//! });
//! let svc = ServiceBuilder::new().layer(ReplicaFallbackLayer::new()).service(redis);
//! let response = svc.oneshot(Request::new(redis::cmd("GET").arg("k").clone())).await?;
//! assert!(matches!(response.served_by, ServedBy::Replica(_)));
//! # Ok(()) }
//! ```
//!
//! # Errors
//!
//! When the replica cannot answer either, the primary's error (its kind and
//! `Sent` describe the request; its message adds what the replica said);
//! otherwise the inner service's errors.
//!
//! # Metrics
//!
//! `redis_replica_fallbacks_total{outcome}`: `served`, `failed`
//! (the replica failed too), `no_replica` (none healthy).

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::ReplicaFallbackLayer;
pub use service::ReplicaFallback;
