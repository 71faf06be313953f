//! [`ObserveLayer`]: the outermost view of every request: one tracing span,
//! and the routing metrics of the seed design.
//!
//! Each request gets a span `redis` with `db.system = "redis"`,
//! `db.operation` (the command name: bounded, never the arguments),
//! `redis.node_role` and `fallback.path` (who answered: `primary`,
//! `replica`, `stale`, `secondary`, or `error`). Raw keys are recorded
//! (`db.redis.key`, the first key) only when the user opts in with
//! [`ObserveLayer::record_keys`]: keys can be personal data.
//!
//! Metrics, derived from [`ServedBy`](redis_resilience_core::ServedBy) and errors:
//! `redis_fallback_routing_attempts_total{status}` with `status` one of
//! `primary_hit` (the primary answered), `primary_failover` (a replica or a
//! kept value answered instead), `secondary_fallback` (the secondary store
//! answered) or `error`; and the histogram
//! `redis_fallback_routing_latency_seconds{status}`.
//!
//! # Example
//!
//! ```
//! use redis_resilience_core::{Error, Request, Response, ServedBy};
//! use redis_resilience_layers::ObserveLayer;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let redis = service_fn(|_request: Request| async {
//!     Ok::<_, Error>(Response::new(redis::Value::Okay, ServedBy::Primary(None)))
//! });
//! let svc = ServiceBuilder::new().layer(ObserveLayer::new()).service(redis);
//! svc.oneshot(Request::new(redis::cmd("PING").clone())).await?;
//! # Ok(()) }
//! ```
//!
//! # Errors
//!
//! None of its own: the inner service's, unchanged.

mod future;
mod layer;

pub use future::ResponseFuture;
pub use layer::{Observe, ObserveLayer, RoutingStatus};
