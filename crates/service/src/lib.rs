//! `RedisService`: the `tower::Service<Request>` at the bottom of every
//! redis-resilience stack, for standalone and Sentinel-managed Redis.
//!
//! - **Standalone**: one multiplexed connection that reconnects in the
//!   background with exponential backoff and full jitter. While the server is
//!   down, requests fail at once with `Connect` (`Sent::No`); when it is back,
//!   the same service recovers.
//! - **Sentinel**: the master is found through any reachable sentinel and
//!   verified with `ROLE` before it gets requests; `+switch-master` switches at
//!   once, and polling (fast while a failover is suspected after a connection
//!   error, a timeout or `READONLY`) catches what the announcement misses.
//!   `Route::Replica` reads go to replicas the sentinels call healthy.
//!
//! Every request has a per-attempt response timeout (default 1 s) cut short by
//! its own deadline; a timeout is `Timeout` with `Sent::Maybe`.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), redis_resilience_core::Error> {
//! use redis_resilience_core::{Request, Route, ReadFrom};
//! use redis_resilience_service::{Credentials, RedisService};
//! use tower::ServiceExt;
//!
//! let redis = RedisService::builder()
//!     .credentials(Credentials::user("app", "app-password"))
//!     .sentinel_credentials(Credentials::password("sentinel-password"))
//!     .sentinel(["10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"], "mymaster")
//!     .await?;
//! let read = Request::new(redis::cmd("GET").arg("user:42").clone())
//!     .with_route(Route::Replica(ReadFrom::LowestLag));
//! let response = redis.clone().oneshot(read).await?;
//! println!("served by {:?}", response.served_by);
//! # Ok(()) }
//! ```
//!
//! # Errors
//!
//! See [`RedisService`]: `Config` for bad input, `Connect`/`Auth` when
//! connecting fails, and per request the kinds of
//! [`ErrorKind`](redis_resilience_core::ErrorKind).

#![forbid(unsafe_code)]

mod cluster;
mod config;
mod connection;
mod endpoint;
mod request;
mod sentinel;
mod service;
mod standalone;
mod topology;

pub use cluster::ClusterHealth;
pub use config::{AddressMap, Config, Credentials, Tls};
pub use service::{RedisService, RedisServiceBuilder, ResponseFuture};
pub use topology::RedisTopology;
