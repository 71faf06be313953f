//! The testkit's error type.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The install hint shown whenever `redis-server` cannot be found.
pub(crate) const INSTALL_HINT: &str = "sudo apt-get install -y redis-server redis-sentinel";

/// A `Result` whose error is the testkit's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while starting, driving or faulting a topology.
///
/// Every variant displays as one line that names the node and what was being
/// done, so a failing test says what happened without a debugger.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// `redis-server` was not found: `REDIS_SERVER_BIN` is unset and nothing
    /// executable named `redis-server` is on `PATH`, or `REDIS_SERVER_BIN`
    /// does not name an executable file.
    BinaryNotFound {
        /// The value of `REDIS_SERVER_BIN`, when it was set.
        env_value: Option<PathBuf>,
    },
    /// A file system or process operation failed.
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A command sent to a node failed (connection refused, timeout, error reply).
    Redis {
        /// The command and the node it was sent to.
        context: String,
        /// The underlying error.
        source: redis::RedisError,
    },
    /// A condition polled for did not become true in time.
    Timeout {
        /// What was awaited, naming the node.
        what: String,
        /// How long the testkit waited.
        after: Duration,
        /// The last state observed, to tell what was missing.
        last: String,
    },
    /// A redis-server process exited while the testkit waited for it.
    Exited {
        /// The node's name and address.
        node: String,
        /// The exit status.
        status: String,
        /// The last lines of the node's log, joined by ` | `.
        log_tail: String,
    },
    /// No free port was found in the testkit's port range.
    NoFreePort {
        /// How many candidate ports were tried.
        tried: usize,
    },
    /// The topology is not in a state that allows the operation (a killed
    /// node was paused, an address is not part of the topology, a reply had
    /// an unexpected shape).
    Topology(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BinaryNotFound { env_value: None } => write!(
                f,
                "redis-server not found on PATH (set REDIS_SERVER_BIN or install it: {INSTALL_HINT})"
            ),
            Self::BinaryNotFound {
                env_value: Some(path),
            } => write!(
                f,
                "REDIS_SERVER_BIN={} is not an executable file (fix or unset it, or install redis-server: {INSTALL_HINT})",
                path.display()
            ),
            Self::Io { context, source } => write!(f, "{context}: {source}"),
            Self::Redis { context, source } => write!(f, "{context}: {source}"),
            Self::Timeout { what, after, last } => {
                write!(
                    f,
                    "timed out after {after:?} waiting for {what} (last seen: {last})"
                )
            }
            Self::Exited {
                node,
                status,
                log_tail,
            } => write!(f, "{node} exited ({status}); log tail: {log_tail}"),
            Self::NoFreePort { tried } => write!(
                f,
                "no free port among {tried} candidates in {}..{}",
                crate::ports::PORT_RANGE.start,
                crate::ports::PORT_RANGE.end
            ),
            Self::Topology(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Redis { source, .. } => Some(source),
            Self::BinaryNotFound { .. }
            | Self::Timeout { .. }
            | Self::Exited { .. }
            | Self::NoFreePort { .. }
            | Self::Topology(_) => None,
        }
    }
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn redis(context: impl Into<String>, source: redis::RedisError) -> Self {
        Self::Redis {
            context: context.into(),
            source,
        }
    }
}
