//! [`Error`]: what failed, and whether the command may have reached the server.
//!
//! Every layer decides from two questions: *what kind of failure is this*
//! ([`Error::kind`]) and *could the server have executed the command*
//! ([`Error::sent`]). A retry of a non-idempotent command is only safe when the
//! answer to the second is [`Sent::No`].
//!
//! Server replies are parsed from their exact texts (DESIGN §9), e.g.
//! `MOVED 12182 127.0.0.1:17102` becomes [`ErrorKind::Moved`] with the slot and
//! the address.
//!
//! # Example
//!
//! ```
//! use redis_resilience_core::{Error, ErrorKind, NodeAddr, Sent};
//!
//! let err = Error::from_server_reply(b"ASK 12182 127.0.0.1:17100");
//! assert_eq!(
//!     err.kind(),
//!     &ErrorKind::Ask { slot: 12182, addr: NodeAddr::new("127.0.0.1", 17100) }
//! );
//! assert_eq!(err.sent(), Sent::Yes);
//! assert_eq!(err.to_string(), "ASK 12182 127.0.0.1:17100");
//!
//! let refused = Error::connect("connection refused");
//! assert_eq!(refused.sent(), Sent::No);
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::route::NodeAddr;
use crate::slot::SLOT_COUNT;

/// Whether the command may have reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sent {
    /// It failed before the command left this process (connect refused, no
    /// connection, circuit open, rate limited): any command may be retried.
    No,
    /// It may or may not have been executed (timeout, connection lost after the
    /// write): only idempotent commands may be retried.
    Maybe,
    /// The server received it and answered with an error.
    Yes,
}

/// What failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Could not connect (refused, unreachable, connect timeout, DNS).
    Connect,
    /// The connection failed while in use.
    Io,
    /// No answer before the attempt's timeout or the request's deadline.
    Timeout,
    /// `MOVED`: the slot is served by `addr` now. An empty host means "the host
    /// of the node that replied" (the server's unknown-endpoint form, `MOVED 3999 :6381`).
    Moved {
        /// The hash slot.
        slot: u16,
        /// The node that serves it.
        addr: NodeAddr,
    },
    /// `ASK`: this one request should be sent to `addr`, preceded by `ASKING`.
    Ask {
        /// The hash slot being migrated.
        slot: u16,
        /// The importing node.
        addr: NodeAddr,
    },
    /// `TRYAGAIN`: a multi-key request during the slot's migration; retry after a pause.
    TryAgain,
    /// `CLUSTERDOWN`: the cluster cannot serve (some slot uncovered, or not yet configured).
    ClusterDown,
    /// `LOADING`: the server is loading its dataset.
    Loading,
    /// `MASTERDOWN`: a replica lost its master and refuses stale reads.
    MasterDown,
    /// `READONLY`: a write reached a replica (typically a demoted master).
    ReadOnly,
    /// `NOREPLICAS`: not enough good replicas for `min-replicas-to-write`.
    NoReplicas,
    /// `CROSSSLOT`, from the server or refused client-side before sending.
    CrossSlot,
    /// `EXECABORT`: a transaction was discarded (e.g. a command in it hit `ASK`).
    ExecAbort,
    /// `NOSCRIPT`: `EVALSHA` of a script the server does not have.
    NoScript,
    /// `WRONGTYPE`: the key holds another type.
    WrongType,
    /// `OOM`: the server is over `maxmemory`.
    Oom,
    /// `NOAUTH` / `WRONGPASS`: authentication is missing or wrong.
    Auth,
    /// `BUSY`: a script or function is running.
    Busy,
    /// A circuit breaker is open; try again after `retry_after`.
    CircuitOpen {
        /// Time until the breaker admits probes.
        retry_after: Duration,
    },
    /// A rate limiter refused the request; try again after `retry_after`.
    RateLimited {
        /// Time until the limiter has capacity.
        retry_after: Duration,
    },
    /// A replica was asked for, and none is healthy.
    NoReplicaAvailable,
    /// Any other server error, with its code (`ERR`, `NOPERM`, `BUSYKEY`, …).
    Server {
        /// The first word of the reply.
        code: Box<str>,
    },
    /// The server's reply could not be understood.
    Protocol,
    /// Bad configuration or input (URL, node list, master name, request).
    Config,
    /// The secondary store failed.
    Secondary,
}

impl ErrorKind {
    /// `MOVED` or `ASK`: a redirect, not a failure.
    #[must_use]
    pub fn is_redirect(&self) -> bool {
        matches!(self, Self::Moved { .. } | Self::Ask { .. })
    }

    /// Failures that say the node is unavailable, rather than the request being wrong:
    /// what circuit breakers count and what fallbacks react to.
    #[must_use]
    pub fn is_availability(&self) -> bool {
        matches!(
            self,
            Self::Connect
                | Self::Io
                | Self::Timeout
                | Self::Loading
                | Self::ClusterDown
                | Self::MasterDown
        )
    }

    /// Server states that pass on their own: worth a retry after a backoff,
    /// even for a command the server received.
    #[must_use]
    pub fn is_transient_server_state(&self) -> bool {
        matches!(
            self,
            Self::TryAgain | Self::Loading | Self::ClusterDown | Self::MasterDown
        )
    }

    /// A short, stable, lower-case name for metrics and logs.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Io => "io",
            Self::Timeout => "timeout",
            Self::Moved { .. } => "moved",
            Self::Ask { .. } => "ask",
            Self::TryAgain => "try_again",
            Self::ClusterDown => "cluster_down",
            Self::Loading => "loading",
            Self::MasterDown => "master_down",
            Self::ReadOnly => "read_only",
            Self::NoReplicas => "no_replicas",
            Self::CrossSlot => "cross_slot",
            Self::ExecAbort => "exec_abort",
            Self::NoScript => "no_script",
            Self::WrongType => "wrong_type",
            Self::Oom => "oom",
            Self::Auth => "auth",
            Self::Busy => "busy",
            Self::CircuitOpen { .. } => "circuit_open",
            Self::RateLimited { .. } => "rate_limited",
            Self::NoReplicaAvailable => "no_replica_available",
            Self::Server { .. } => "server",
            Self::Protocol => "protocol",
            Self::Config => "config",
            Self::Secondary => "secondary",
        }
    }
}

type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// A failed request. Cheap to clone (one `Arc`), so one failure can be handed to
/// every waiter of a coalesced request.
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

struct Inner {
    kind: ErrorKind,
    sent: Sent,
    /// For server errors, the whole reply text; otherwise a description.
    message: Box<str>,
    source: Option<Source>,
}

impl Error {
    /// An error of any kind.
    pub fn new(kind: ErrorKind, sent: Sent, message: impl Into<Box<str>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                kind,
                sent,
                message: message.into(),
                source: None,
            }),
        }
    }

    /// Attaches the underlying cause (kept for `source()`).
    #[must_use]
    pub fn with_source(self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        let inner = Inner {
            kind: self.inner.kind.clone(),
            sent: self.inner.sent,
            message: self.inner.message.clone(),
            source: Some(Arc::new(source)),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Could not connect: nothing was sent.
    pub fn connect(message: impl Into<Box<str>>) -> Self {
        Self::new(ErrorKind::Connect, Sent::No, message)
    }

    /// The connection failed; `sent` says whether the command had been written.
    pub fn io(sent: Sent, message: impl Into<Box<str>>) -> Self {
        Self::new(ErrorKind::Io, sent, message)
    }

    /// No answer in time; `sent` says whether the command had been written.
    #[must_use]
    pub fn timeout(sent: Sent) -> Self {
        Self::new(ErrorKind::Timeout, sent, "timed out waiting for the server")
    }

    /// Bad configuration or input; nothing was sent.
    pub fn config(message: impl Into<Box<str>>) -> Self {
        Self::new(ErrorKind::Config, Sent::No, message)
    }

    /// A request whose keys span slots, refused before sending.
    #[must_use]
    pub fn cross_slot() -> Self {
        Self::new(
            ErrorKind::CrossSlot,
            Sent::No,
            "keys in request don't hash to the same slot (refused before sending)",
        )
    }

    /// A breaker is open; nothing was sent.
    #[must_use]
    pub fn circuit_open(retry_after: Duration) -> Self {
        Self::new(
            ErrorKind::CircuitOpen { retry_after },
            Sent::No,
            format!("circuit open, retry after {retry_after:?}"),
        )
    }

    /// A rate limiter refused; nothing was sent.
    #[must_use]
    pub fn rate_limited(retry_after: Duration) -> Self {
        Self::new(
            ErrorKind::RateLimited { retry_after },
            Sent::No,
            format!("rate limited, retry after {retry_after:?}"),
        )
    }

    /// Parses a server error reply (`-` already stripped, e.g. `MOVED 1 127.0.0.1:7000`).
    /// Never panics: unknown codes become [`ErrorKind::Server`], malformed redirects
    /// [`ErrorKind::Protocol`].
    #[must_use]
    pub fn from_server_reply(reply: &[u8]) -> Self {
        let text = String::from_utf8_lossy(reply);
        let text = text.trim_end_matches(['\r', '\n']);
        let (code, detail) = text.split_once(' ').unwrap_or((text, ""));
        Self::from_server_code(code, detail)
    }

    /// Like [`from_server_reply`](Self::from_server_reply), from a code and its detail text.
    #[must_use]
    pub fn from_server_code(code: &str, detail: &str) -> Self {
        let message = if detail.is_empty() {
            code.to_owned()
        } else {
            format!("{code} {detail}")
        };
        let kind = match code {
            "MOVED" | "ASK" => match parse_redirect(detail) {
                Some((slot, addr)) if code == "MOVED" => ErrorKind::Moved { slot, addr },
                Some((slot, addr)) => ErrorKind::Ask { slot, addr },
                None => ErrorKind::Protocol,
            },
            "TRYAGAIN" => ErrorKind::TryAgain,
            "CLUSTERDOWN" => ErrorKind::ClusterDown,
            "LOADING" => ErrorKind::Loading,
            "MASTERDOWN" => ErrorKind::MasterDown,
            "READONLY" => ErrorKind::ReadOnly,
            "NOREPLICAS" => ErrorKind::NoReplicas,
            "CROSSSLOT" => ErrorKind::CrossSlot,
            "EXECABORT" => ErrorKind::ExecAbort,
            "NOSCRIPT" => ErrorKind::NoScript,
            "WRONGTYPE" => ErrorKind::WrongType,
            "OOM" => ErrorKind::Oom,
            "NOAUTH" | "WRONGPASS" => ErrorKind::Auth,
            "BUSY" => ErrorKind::Busy,
            other => ErrorKind::Server { code: other.into() },
        };
        Self::new(kind, Sent::Yes, message)
    }

    /// Converts a redis-rs error. Server errors are parsed as server replies
    /// (`Sent::Yes`); I/O failures become `Connect`, `Timeout` or `Io`, with
    /// `sent` saying whether the command had been written when it happened.
    #[must_use]
    pub fn from_redis(err: redis::RedisError, sent: Sent) -> Self {
        use redis::ErrorKind as K;
        if let (K::Server(_) | K::Extension, Some(code)) = (err.kind(), err.code()) {
            let detail = err.detail().unwrap_or("").to_owned();
            return Self::from_server_code(code, &detail);
        }
        let message = err.to_string();
        let (kind, sent) = if err.is_connection_refusal() {
            (ErrorKind::Connect, Sent::No)
        } else if err.is_timeout() {
            (ErrorKind::Timeout, sent)
        } else {
            match err.kind() {
                K::AuthenticationFailed => (ErrorKind::Auth, Sent::Yes),
                K::InvalidClientConfig | K::EmptySentinelList => (ErrorKind::Config, Sent::No),
                K::Parse | K::UnexpectedReturnType => (ErrorKind::Protocol, sent),
                _ => (ErrorKind::Io, sent),
            }
        };
        Self::new(kind, sent, message).with_source(err)
    }

    /// What failed.
    #[must_use]
    pub fn kind(&self) -> &ErrorKind {
        &self.inner.kind
    }

    /// Whether the command may have reached the server.
    #[must_use]
    pub fn sent(&self) -> Sent {
        self.inner.sent
    }

    /// The server's reply text for server errors; a description otherwise.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.inner.message
    }
}

/// `<slot> <host>:<port>`; `None` unless both parse and the slot is in range.
fn parse_redirect(detail: &str) -> Option<(u16, NodeAddr)> {
    let mut words = detail.split_ascii_whitespace();
    let slot: u16 = words.next()?.parse().ok()?;
    if slot >= SLOT_COUNT {
        return None;
    }
    let endpoint = words.next()?;
    if words.next().is_some() {
        return None;
    }
    let addr = match endpoint.strip_prefix(':') {
        // Unknown endpoint: same host as the node that replied.
        Some(port) => NodeAddr::new("", port.parse().ok()?),
        None => NodeAddr::parse(endpoint)?,
    };
    Some((slot, addr))
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.inner.kind)
            .field("sent", &self.inner.sent)
            .field("message", &self.inner.message)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(reply: &str) -> ErrorKind {
        Error::from_server_reply(reply.as_bytes()).kind().clone()
    }

    #[test]
    fn parses_every_measured_server_text() {
        // Texts as measured against redis 7.0.15 (DESIGN §9).
        assert_eq!(
            kind("ASK 12182 127.0.0.1:17100"),
            ErrorKind::Ask {
                slot: 12182,
                addr: NodeAddr::new("127.0.0.1", 17100)
            }
        );
        assert_eq!(
            kind("MOVED 12182 127.0.0.1:17102"),
            ErrorKind::Moved {
                slot: 12182,
                addr: NodeAddr::new("127.0.0.1", 17102)
            }
        );
        assert_eq!(
            kind("TRYAGAIN Multiple keys request during rehashing of slot"),
            ErrorKind::TryAgain
        );
        assert_eq!(
            kind("CROSSSLOT Keys in request don't hash to the same slot"),
            ErrorKind::CrossSlot
        );
        assert_eq!(
            kind("CLUSTERDOWN The cluster is down"),
            ErrorKind::ClusterDown
        );
        assert_eq!(
            kind("CLUSTERDOWN Hash slot not served"),
            ErrorKind::ClusterDown
        );
        assert_eq!(
            kind("READONLY You can't write against a read only replica."),
            ErrorKind::ReadOnly
        );
        assert_eq!(
            kind("EXECABORT Transaction discarded because of previous errors."),
            ErrorKind::ExecAbort
        );
        assert_eq!(
            kind("LOADING Redis is loading the dataset in memory"),
            ErrorKind::Loading
        );
        assert_eq!(
            kind(
                "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
            ),
            ErrorKind::MasterDown
        );
        assert_eq!(
            kind("NOREPLICAS Not enough good replicas to write."),
            ErrorKind::NoReplicas
        );
        assert_eq!(
            kind("NOSCRIPT No matching script. Please use EVAL."),
            ErrorKind::NoScript
        );
        assert_eq!(
            kind("WRONGTYPE Operation against a key holding the wrong kind of value"),
            ErrorKind::WrongType
        );
        assert_eq!(
            kind("OOM command not allowed when used memory > 'maxmemory'."),
            ErrorKind::Oom
        );
        assert_eq!(kind("NOAUTH Authentication required."), ErrorKind::Auth);
        assert_eq!(
            kind("WRONGPASS invalid username-password pair or user is disabled."),
            ErrorKind::Auth
        );
        assert_eq!(
            kind(
                "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT."
            ),
            ErrorKind::Busy
        );
        assert_eq!(
            kind("ERR unknown command 'FOO'"),
            ErrorKind::Server { code: "ERR".into() }
        );
    }

    #[test]
    fn redirect_edge_cases() {
        assert_eq!(
            kind("MOVED 3999 :6381"),
            ErrorKind::Moved {
                slot: 3999,
                addr: NodeAddr::new("", 6381)
            }
        );
        assert_eq!(
            kind("MOVED 1 [::1]:7000"),
            ErrorKind::Moved {
                slot: 1,
                addr: NodeAddr::new("::1", 7000)
            }
        );
        assert_eq!(kind("MOVED 16384 127.0.0.1:7000"), ErrorKind::Protocol);
        assert_eq!(kind("MOVED x 127.0.0.1:7000"), ErrorKind::Protocol);
        assert_eq!(kind("MOVED 1"), ErrorKind::Protocol);
        assert_eq!(kind("ASK 1 127.0.0.1:99999"), ErrorKind::Protocol);
        assert_eq!(kind("MOVED 1 127.0.0.1:7000 extra"), ErrorKind::Protocol);
    }

    #[test]
    fn display_is_the_server_text_and_clone_is_shared() {
        let err = Error::from_server_reply(b"MOVED 12182 127.0.0.1:17102\r\n");
        assert_eq!(err.to_string(), "MOVED 12182 127.0.0.1:17102");
        let clone = err.clone();
        assert!(Arc::ptr_eq(&err.inner, &clone.inner));
    }
}
