//! Tower middlewares that keep Redis requests answering while a deployment
//! fails over or reshards.
//!
//! Every layer speaks the contract of `redis-resilience-core`: a service of
//! [`Request`](redis_resilience_core::Request) to
//! [`Response`](redis_resilience_core::Response) failing with
//! [`Error`](redis_resilience_core::Error). Layers never depend on the real
//! service, so each one is tested against mocks.
//!
//! - [`retry`]: [`RetryLayer`] retries transient failures, with full-jitter
//!   backoff, a retry budget shared by every clone, and the request's deadline
//!   as a hard bound.
//! - [`redirect`]: [`RedirectLayer`] follows cluster `MOVED` and `ASK`
//!   redirects, with a hop limit and loop detection.
//! - [`replica_fallback`]: [`ReplicaFallbackLayer`] sends a read whose
//!   primary failed to a healthy replica, once.
//! - [`circuit_breaker`]: [`CircuitBreakerLayer`] stops sending to a failing
//!   node (one breaker per node, or one for all) and probes it back.
//! - [`observe`]: [`ObserveLayer`], one tracing span per request and the
//!   routing metrics.
//! - [`coalesce`]: [`CoalesceLayer`], one upstream call per identical
//!   in-flight read, safe when the caller that started it goes away.
//! - [`staleness`]: [`StalenessLayer`], the last good value of a read within
//!   a staleness budget when Redis cannot answer, with explicit invalidation.
//! - [`secondary`]: [`SecondaryStoreLayer`], the source of truth when Redis
//!   could not answer, rate-limited and coalesced.
//!
//! Put [`RedirectLayer`] innermost, next to the service, and [`RetryLayer`]
//! outside it: a resharding then costs no retry and no backoff, and the retry
//! layer only sees real failures.
//!
//! # Example
//!
//! ```
//! use redis_resilience_core::{Error, Request, Response, ServedBy};
//! use redis_resilience_layers::{RedirectLayer, RetryLayer, RetryPolicy};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! // Stands in for `RedisService`.
//! let redis = service_fn(|_request: Request| async {
//!     Ok::<_, Error>(Response::new(redis::Value::Okay, ServedBy::Primary(None)))
//! });
//! let svc = ServiceBuilder::new()
//!     .layer(RetryLayer::new(RetryPolicy::default()))
//!     .layer(RedirectLayer::new())
//!     .service(redis);
//! let response = svc
//!     .oneshot(Request::new(redis::cmd("SET").arg("k").arg("v").clone()))
//!     .await?;
//! assert_eq!(response.value, redis::Value::Okay);
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! The layers return the inner service's errors, unchanged when they give up
//! on them (so [`Error::kind`](redis_resilience_core::Error::kind) and
//! [`Error::sent`](redis_resilience_core::Error::sent) still describe what
//! happened), except where a module documents an error of its own.
//!
//! # Metrics
//!
//! Recorded through the [`metrics`] facade (nothing is recorded unless the
//! application installs a recorder): `redis_retry_attempts_total{outcome}`,
//! `redis_redirects_total{kind}`, `redis_circuit_state{node}`,
//! `redis_circuit_transitions_total{node,to}`,
//! `redis_replica_fallbacks_total{outcome}`,
//! `redis_coalesced_requests_total{role}`, `redis_stale_served_total`,
//! `redis_stale_age_seconds`, `redis_secondary_requests_total{outcome}`,
//! `redis_fallback_routing_attempts_total{status}` and
//! `redis_fallback_routing_latency_seconds{status}`. `docs/RUNBOOK.md`
//! explains each.

#![forbid(unsafe_code)]

#[cfg(feature = "circuit-breaker")]
pub mod circuit_breaker;
#[cfg(feature = "coalesce")]
pub mod coalesce;
#[cfg(feature = "observe")]
pub mod observe;
#[cfg(feature = "redirect")]
pub mod redirect;
#[cfg(feature = "replica-fallback")]
pub mod replica_fallback;
#[cfg(feature = "retry")]
pub mod retry;
#[cfg(feature = "secondary")]
pub mod secondary;
#[cfg(feature = "staleness")]
pub mod staleness;

#[cfg(feature = "circuit-breaker")]
pub use circuit_breaker::{
    CircuitBreaker, CircuitBreakerConfig, CircuitBreakerConfigBuilder, CircuitBreakerHandle,
    CircuitBreakerLayer, CircuitState,
};
#[cfg(feature = "coalesce")]
pub use coalesce::{Coalesce, CoalesceLayer};
#[cfg(feature = "observe")]
pub use observe::{Observe, ObserveLayer, RoutingStatus};
#[cfg(feature = "redirect")]
pub use redirect::{Redirect, RedirectLayer, RedirectPolicy, RedirectPolicyBuilder};
#[cfg(feature = "replica-fallback")]
pub use replica_fallback::{ReplicaFallback, ReplicaFallbackLayer};
#[cfg(feature = "retry")]
pub use retry::{
    Retry, RetryBudget, RetryBudgetBuilder, RetryLayer, RetryPolicy, RetryPolicyBuilder,
};
#[cfg(feature = "secondary")]
pub use secondary::{SecondaryStore, SecondaryStoreConfig, SecondaryStoreLayer};
#[cfg(feature = "staleness")]
pub use staleness::{Staleness, StalenessConfig, StalenessLayer};
