//! Where a request should go: [`Route`], [`ReadFrom`] and [`NodeAddr`].

use std::fmt;
use std::sync::Arc;

/// The address of one Redis node, `host:port`, as the server announces it.
///
/// Cheap to clone (an `Arc<str>`), so a `Route` naming a node keeps
/// [`Request`](crate::Request) clones O(1).
///
/// # Example
///
/// ```
/// use redis_resilience_core::NodeAddr;
///
/// let addr = NodeAddr::parse("127.0.0.1:7000").unwrap();
/// assert_eq!(addr.host(), "127.0.0.1");
/// assert_eq!(addr.port(), 7000);
/// assert!(NodeAddr::parse("no-port").is_none());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeAddr {
    text: Arc<str>,
    port: u16,
    host_len: usize,
}

impl NodeAddr {
    /// Parses `host:port` (an IPv6 host may be bracketed, `[::1]:7000`, or bare, `::1:7000`,
    /// as `CLUSTER SLOTS` and `MOVED` replies print it). `None` when there is no valid port
    /// or no host.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let (host, port) = text.rsplit_once(':')?;
        let port: u16 = port.parse().ok()?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return None;
        }
        Some(Self::new(host, port))
    }

    /// An address from a host and a port.
    #[must_use]
    pub fn new(host: &str, port: u16) -> Self {
        let text: Arc<str> = Arc::from(format!("{host}:{port}"));
        Self {
            text,
            port,
            host_len: host.len(),
        }
    }

    /// The host part (without brackets).
    #[must_use]
    pub fn host(&self) -> &str {
        &self.text[..self.host_len]
    }

    /// The port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeAddr({})", self.text)
    }
}

/// Which replica a [`Route::Replica`] request may be served by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ReadFrom {
    /// A healthy replica (link to its master up), lowest replication lag first.
    #[default]
    LowestLag,
    /// Any healthy replica, spreading load among them.
    AnyHealthy,
}

/// Where the service sends a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Route {
    /// The primary that owns the request's slot (the master, outside a cluster).
    #[default]
    Auto,
    /// A replica of that primary.
    Replica(ReadFrom),
    /// Exactly this node (after a `MOVED` redirect).
    Node(NodeAddr),
    /// Exactly this node, with `ASKING` sent immediately before the command on the
    /// same connection (after an `ASK` redirect).
    Asking(NodeAddr),
}

impl Route {
    /// The node this route names, if it names one.
    #[must_use]
    pub fn node(&self) -> Option<&NodeAddr> {
        match self {
            Self::Node(addr) | Self::Asking(addr) => Some(addr),
            Self::Auto | Self::Replica(_) => None,
        }
    }

    /// Whether the request goes to a replica.
    #[must_use]
    pub fn is_replica(&self) -> bool {
        matches!(self, Self::Replica(_))
    }
}
