//! Real `redis-server` topologies on loopback, fault injection and a chaos
//! proxy, for the tests of the redis-resilience crates.
//!
//! - [`Standalone`], [`Replicated`], [`Sentinel`] and [`Cluster`] start real
//!   `redis-server` processes (found through [`redis_server_binary`]) in a temp
//!   dir per topology, bound to 127.0.0.1 on ports reserved with
//!   [`reserve_port`] so that parallel tests, even in different processes,
//!   never collide. Each comes back only when it is ready, which is polled
//!   (`PING`, `INFO replication`, `SENTINEL …`, `CLUSTER INFO`), never slept on.
//! - Faults on any [`Node`]: [`kill`](Node::kill), [`pause`](Node::pause) /
//!   [`resume`](Node::resume), [`restart`](Node::restart); manual failovers
//!   ([`Sentinel::failover`], [`Cluster::failover`]); slot migration in
//!   observable steps ([`SlotMigration`]); and a [`ChaosProxy`] with latency,
//!   blackhole, reset, refuse and slice toxics.
//! - Everything is killed and reaped on drop, also when a test panics, and a
//!   panicking test prints each node's log tail to stderr.
//! - [`failover_guard`] runs failover scenarios one at a time.
//!
//! Test settings: no persistence (`save ""`, `appendonly no`),
//! `repl-diskless-sync yes` with no delay, `cluster-node-timeout 1000`,
//! Sentinel `down-after-milliseconds 1000`, `failover-timeout 4000` and
//! `SENTINEL DEBUG info-period 1000 publish-period 500 ping-period 500`,
//! `enable-debug-command local`.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use redis_resilience_testkit::{Cluster, ChaosProxy, Standalone, failover_guard};
//!
//! # async fn demo() -> redis_resilience_testkit::Result<()> {
//! // A server behind a proxy that adds latency.
//! let server = Standalone::start().await?;
//! let proxy = ChaosProxy::start(server.addr()).await?;
//! proxy.toxics().latency(Duration::from_millis(20));
//!
//! // A 3+3 cluster whose first primary dies.
//! let _serial = failover_guard().await?;
//! let cluster = Cluster::start(3, 1).await?;
//! let victim = &cluster.primaries()[0];
//! victim.kill()?;
//! let promoted = cluster.wait_for_promotion(victim, Duration::from_secs(15)).await?;
//! assert_eq!(promoted.addr(), cluster.replicas_of(victim)[0].addr());
//! # Ok(()) }
//! ```
//!
//! # Errors
//!
//! Every fallible call returns [`Error`], whose message names the node and
//! what was awaited; a missing `redis-server` is [`Error::BinaryNotFound`],
//! which says how to install it. Tests should fail with it, not skip.
#![forbid(unsafe_code)]

mod binary;
mod cluster;
mod error;
mod guard;
mod node;
mod ports;
mod proxy;
mod replicated;
mod sentinel;
mod standalone;
mod wait;

pub use binary::{REDIS_SERVER_BIN, redis_server_binary};
pub use cluster::{Cluster, ClusterBuilder, SLOTS, SlotMigration};
pub use error::{Error, Result};
pub use guard::{FailoverGuard, failover_guard};
pub use node::{Node, NodeKind, ProcessState};
pub use ports::{PORT_RANGE, PortReservation, reserve_port};
pub use proxy::{ChaosProxy, ToxicHandle, Toxics};
pub use replicated::Replicated;
pub use sentinel::{MASTER_NAME, Sentinel};
pub use standalone::{Standalone, StandaloneBuilder};
