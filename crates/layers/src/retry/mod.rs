//! Retries transient failures: [`RetryLayer`] and [`Retry`].
//!
//! A failed attempt is sent again when the failure says the command did not
//! run, or that running it twice is harmless:
//!
//! - any command on [`Sent::No`](redis_resilience_core::Sent::No) (it never
//!   left: connection refused, no connection);
//! - idempotent commands only on [`Sent::Maybe`](redis_resilience_core::Sent::Maybe)
//!   (a timeout or a lost connection after the write: `GET` yes, `INCR` no);
//! - `TRYAGAIN`, `LOADING`, `CLUSTERDOWN`, `MASTERDOWN`: server states that
//!   pass on their own;
//! - `READONLY`: the write reached a demoted master and did not run; the
//!   service rediscovers the master, so the retry reaches the new one.
//!
//! Never retried: `MOVED`/`ASK` (put [`RedirectLayer`](crate::RedirectLayer)
//! inside this layer), `CircuitOpen` and `RateLimited` (they shed load on
//! purpose), semantic errors (`WRONGTYPE`, `NOSCRIPT`, `OOM`, `Server { .. }`,
//! `Auth`, `CROSSSLOT`, `Config`, `Protocol`, …), and requests marked
//! [`no_retry`](redis_resilience_core::Request::no_retry).
//! [`RetryPolicy`] has the full table.
//!
//! Every retry first waits a full-jitter backoff, drawn from
//! `[0, min(max_delay, base_delay × 2ⁿ)]` for retry `n`. No retry starts
//! when the request's deadline would pass before the backoff ends: the
//! future returns the error at once instead of sleeping past the deadline.
//! Retries spend a [`RetryBudget`] shared by every clone of the layer, so
//! that during an outage retries add at most a share of the traffic.
//!
//! The future is a state machine with no allocation per attempt beyond the
//! cloned [`Request`](redis_resilience_core::Request) (O(1)); each retry is
//! sent through a clone of the inner service that was driven to readiness
//! first.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::time::Duration;
//!
//! use redis_resilience_core::{Error, Request, Response, ServedBy};
//! use redis_resilience_layers::retry::{RetryLayer, RetryPolicy};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let calls = Arc::new(AtomicUsize::new(0));
//! let counter = Arc::clone(&calls);
//! // The first attempt cannot connect; the second succeeds.
//! let redis = service_fn(move |_request: Request| {
//!     let attempt = counter.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         if attempt == 0 {
//!             Err(Error::connect("connection refused"))
//!         } else {
//!             Ok(Response::new(redis::Value::Okay, ServedBy::Primary(None)))
//!         }
//!     }
//! });
//!
//! let layer = RetryLayer::new(
//!     RetryPolicy::builder()
//!         .max_attempts(3)
//!         .base_delay(Duration::from_millis(1))
//!         .build(),
//! );
//! let svc = layer.layer(redis);
//! let response = svc
//!     .oneshot(Request::new(redis::cmd("INCR").arg("visits").clone()))
//!     .await?;
//! assert_eq!(response.value, redis::Value::Okay);
//! assert_eq!(calls.load(Ordering::SeqCst), 2);
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! When the layer gives up it returns the error of the last attempt,
//! unchanged: because the failure is not retryable, the attempts are used
//! up, the deadline is too close, or the budget is spent. An error from the
//! inner service's `poll_ready` before a retry is returned as it is.
//!
//! # Defaults
//!
//! 3 attempts in all; backoff base 10 ms, cap 250 ms; budget 10 % of
//! requests plus 10 retries a second (burst 10); random seed.
//!
//! # Metrics
//!
//! `redis_retry_attempts_total{outcome}`, with `outcome` one of `retried`
//! (a retry was scheduled), `success_after_retry`, `not_retryable`,
//! `exhausted` (attempts used up), `deadline` and `budget_exhausted`.

mod budget;
pub mod future;
mod layer;
mod policy;
mod service;

pub use budget::{RetryBudget, RetryBudgetBuilder};
pub use layer::RetryLayer;
pub use policy::{RetryPolicy, RetryPolicyBuilder};
pub use service::Retry;
