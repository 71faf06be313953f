//! Follows Redis Cluster redirects: [`RedirectLayer`] and [`Redirect`].
//!
//! The service reports `MOVED` and `ASK` as errors and does not follow them;
//! this layer does:
//!
//! - `MOVED <slot> <addr>`: the slot lives on `addr` now. The request is sent
//!   again with [`Route::Node(addr)`](redis_resilience_core::Route::Node) (the
//!   service also patches its slot map when it sees the `MOVED`).
//! - `ASK <slot> <addr>`: the slot is migrating and this key may already be on
//!   `addr`. The request is sent again with
//!   [`Route::Asking(addr)`](redis_resilience_core::Route::Asking): the
//!   service sends `ASKING` and the command together on one connection. The
//!   slot map does not change.
//!
//! A redirect is not a failure: it is followed at once, with no backoff, and
//! since this layer sits inside [`RetryLayer`](crate::RetryLayer) it spends no
//! retry budget and no attempt, and a circuit breaker outside it never sees it.
//!
//! Limits:
//!
//! - at most [`max_hops`](RedirectPolicy::max_hops) redirects per request;
//! - loop detection: a `MOVED` to a node the request was already sent to by a
//!   `MOVED`, or to the node that just answered, is an error, not a spin. A
//!   shard that is entirely down makes the other nodes answer
//!   `MOVED <slot> <dead node>`, so redirects must be bounded.
//! - a `MOVED`/`ASK` with an empty host (`MOVED 3999 :6381`) means the host of
//!   the node that replied: it is taken from the request's route when that
//!   names a node ([`Route::Node`](redis_resilience_core::Route::Node) or
//!   [`Route::Asking`](redis_resilience_core::Route::Asking)); otherwise the
//!   request fails.
//! - no redirect is followed once the request's deadline has passed.
//!
//! # Transactions
//!
//! A `MULTI`/`EXEC` transaction runs nothing when one of its commands is
//! redirected while queued (the server discards it with `EXECABORT`), so
//! sending it again is safe. When the service reports such a transaction as
//! `MOVED` (all its keys share one slot), it is sent again, whole, to the new
//! node. When it reports `ASK`, it is sent again, whole, with
//! [`Route::Asking`](redis_resilience_core::Route::Asking): `ASKING` then
//! `MULTI` … `EXEC` on one connection. The server keeps the `ASKING` flag for
//! the whole transaction, so every queued command is accepted by the
//! importing node. Turn this off with
//! [`follow_ask_in_transactions(false)`](RedirectPolicyBuilder::follow_ask_in_transactions)
//! to get an error instead.
//!
//! # Example
//!
//! ```
//! use redis_resilience_core::{Error, NodeAddr, Request, Response, Route, ServedBy};
//! use redis_resilience_layers::redirect::RedirectLayer;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! // A cluster node that moved slot 866 to 127.0.0.1:7001.
//! let redis = service_fn(|request: Request| async move {
//!     match request.route() {
//!         Route::Node(addr) => Ok(Response::new(
//!             redis::Value::Okay,
//!             ServedBy::Primary(Some(addr.clone())),
//!         )),
//!         _ => Err(Error::from_server_reply(b"MOVED 866 127.0.0.1:7001")),
//!     }
//! });
//!
//! let svc = RedirectLayer::new().layer(redis);
//! let response = svc
//!     .oneshot(Request::new(redis::cmd("SET").arg("user:1").arg("x").clone()))
//!     .await?;
//! assert_eq!(
//!     response.served_by,
//!     ServedBy::Primary(Some(NodeAddr::new("127.0.0.1", 7001)))
//! );
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! Errors that are not redirects are returned unchanged. When the layer
//! gives up on a redirect, it returns an error that keeps the redirect's
//! [`ErrorKind`](redis_resilience_core::ErrorKind) (`Moved` or `Ask`, with its
//! slot and address) and whether it was sent, with a message saying why,
//! and the server's error as its [`source`](std::error::Error::source):
//!
//! - `too many redirects: gave up after 5 hops at MOVED 866 127.0.0.1:7001`;
//! - `redirect loop: MOVED to 127.0.0.1:7001 again after 1 hops at …`;
//! - `cannot follow MOVED 3999 :6381: it names the host of the node that
//!   replied, which the route does not say`;
//! - `transaction not re-sent after ASK: …` (only when turned off).
//!
//! Keeping the kind means [`RetryLayer`](crate::RetryLayer) never retries
//! them. When the deadline passed before a redirect could be followed, the
//! error is a [`Timeout`](redis_resilience_core::ErrorKind::Timeout) with
//! [`Sent::No`](redis_resilience_core::Sent::No) (the redirected command did
//! not run). An error from the inner service's `poll_ready` before a hop is
//! returned as it is.
//!
//! # Defaults
//!
//! At most 5 hops; transactions follow `ASK`.
//!
//! # Metrics
//!
//! `redis_redirects_total{kind}`, `kind` = `moved` or `ask`, for every
//! redirect followed.

pub mod future;
mod layer;
mod policy;
mod service;

pub use layer::RedirectLayer;
pub use policy::{RedirectPolicy, RedirectPolicyBuilder};
pub use service::Redirect;
