//! Composable tower layers that keep a Rust service answering while Redis
//! fails over, reshards or hangs.
//!
//! This is the facade crate. Today it re-exports the contract every layer
//! speaks, from [`redis_resilience_core`]: a [`Request`] carries a command and
//! what is known about it ([`CommandInfo`]: slot, keys, read-only,
//! idempotent), a [`Route`] and a deadline; a [`Response`] says who answered
//! ([`ServedBy`]); an [`Error`] says what failed ([`ErrorKind`]) and whether
//! the command may have run ([`Sent`]). The `RedisService` and the layers
//! build on it.
//!
//! # Example
//!
//! ```
//! use redis_resilience::{Error, KeySlot, Request, Sent};
//!
//! let request = Request::new(redis::cmd("MGET").arg("{user:42}:name").arg("{user:42}:mail").clone());
//! assert!(request.info().is_readonly());
//! // Hash-tagged keys share a slot, so a cluster can serve this in one go.
//! assert!(matches!(request.slot(), KeySlot::Single(_)));
//!
//! // A timeout after the command was written: only idempotent commands may be sent again.
//! let err = Error::timeout(Sent::Maybe);
//! assert!(err.sent() == Sent::Maybe && request.info().is_idempotent());
//! ```
//!
//! # Minimum supported Rust version
//!
//! Rust 1.89.

#![forbid(unsafe_code)]

mod client;

pub use client::Client;
pub use redis_resilience_core as core;
pub use redis_resilience_layers as layers;
pub use redis_resilience_core::{
    Command, CommandInfo, Error, ErrorKind, KeySlot, NodeAddr, NodeHealth, ReadFrom, Request,
    RequestOptions, Response, Route, Sent, ServedBy, Topology,
};
pub use redis_resilience_service::{
    Config, Credentials, RedisService, RedisServiceBuilder, RedisTopology,
};
