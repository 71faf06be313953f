//! The contract every redis-resilience layer speaks, and what is known about
//! Redis commands before they are sent. No I/O.
//!
//! - [`Request`]: a command or pipeline with its [`CommandInfo`], a [`Route`],
//!   an optional deadline and per-request options. Clones are O(1).
//! - [`Response`]: the value and [`ServedBy`], who answered.
//! - [`Error`]: cheap to clone, with [`ErrorKind`] (parsed from the server's
//!   exact error texts) and [`Sent`] (could the command have run?).
//! - [`command`]: the command table generated from the server's `COMMAND`
//!   reply, key extraction, and our idempotency classification.
//! - [`slot`]: CRC16 hash slots with hash tags.
//! - [`Topology`]: the view of the nodes a service exports to layers.
//!
//! # Example
//!
//! ```
//! use redis_resilience_core::{Error, ErrorKind, Request, Sent};
//!
//! let request = Request::new(redis::cmd("INCR").arg("visits").clone());
//! assert!(!request.info().is_idempotent());
//!
//! // A layer deciding whether a failed INCR may be sent again:
//! let err = Error::timeout(Sent::Maybe);
//! let may_retry = match err.sent() {
//!     Sent::No => true,
//!     Sent::Maybe => request.info().is_idempotent(),
//!     Sent::Yes => err.kind().is_transient_server_state(),
//! };
//! assert!(!may_retry);
//! assert_eq!(err.kind(), &ErrorKind::Timeout);
//! ```

#![forbid(unsafe_code)]

pub mod command;
pub mod error;
pub mod request;
pub mod response;
pub mod route;
pub mod slot;
pub mod topology;

pub use command::{CommandFlags, CommandInfo, KeySlot};
pub use error::{Error, ErrorKind, Sent};
pub use request::{Command, Request, RequestOptions};
pub use response::{Response, ServedBy};
pub use route::{NodeAddr, ReadFrom, Route};
pub use topology::{NodeHealth, Topology};
