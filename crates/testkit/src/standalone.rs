//! One standalone `redis-server`.

use tempfile::TempDir;

use crate::binary::redis_server_binary;
use crate::error::{Error, Result};
use crate::node::{Node, NodeKind, NodeSpec};
use crate::wait::START_TIMEOUT;

/// A single `redis-server` in its own temp dir.
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> redis_resilience_testkit::Result<()> {
/// use redis_resilience_testkit::Standalone;
///
/// let plain = Standalone::start().await?;
/// let secured = Standalone::builder().password("s3cret").config("maxmemory", "64mb").start().await?;
/// assert!(plain.url().starts_with("redis://127.0.0.1:"));
/// let _pong: String = secured.node().query(&["PING"]).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Standalone {
    node: Node,
    // Dropped last: the node's process dies before its directory goes.
    _dir: TempDir,
}

/// Builds a [`Standalone`] with extra config.
#[derive(Debug, Default, Clone)]
#[must_use = "a builder does nothing until `start` is awaited"]
pub struct StandaloneBuilder {
    extra: Vec<String>,
    password: Option<String>,
}

impl StandaloneBuilder {
    /// Adds `key value` verbatim to redis.conf, after the testkit's own lines,
    /// so it overrides them. Several arguments go in one `value`, quoted as
    /// redis.conf wants: `.config("save", "\"\"")`.
    pub fn config(mut self, key: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        self.extra
            .push(format!("{} {}", key.as_ref(), value.as_ref()));
        self
    }

    /// Sets `requirepass`; the node's own admin connections, [`Node::client`]
    /// and [`Node::raw`] then authenticate with it, while [`Node::url`] stays
    /// without credentials.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Starts the server and waits until it answers `PING`.
    ///
    /// # Errors
    ///
    /// [`Error::BinaryNotFound`] without `redis-server`; [`Error::Exited`]
    /// when it refuses the config; [`Error::Timeout`] when it does not answer.
    pub async fn start(self) -> Result<Standalone> {
        let binary = redis_server_binary()?;
        let dir = tempdir("standalone")?;
        let node = Node::spawn(NodeSpec {
            binary: &binary,
            parent: dir.path(),
            name: "standalone".to_owned(),
            kind: NodeKind::Server,
            cluster: false,
            extra: self.extra,
            password: self.password,
        })?;
        node.wait_ready(START_TIMEOUT).await?;
        Ok(Standalone { node, _dir: dir })
    }
}

impl Standalone {
    /// Starts a server with the testkit's defaults.
    ///
    /// # Errors
    ///
    /// As [`StandaloneBuilder::start`].
    pub async fn start() -> Result<Self> {
        Self::builder().start().await
    }

    /// A builder for extra config lines or a password.
    pub fn builder() -> StandaloneBuilder {
        StandaloneBuilder::default()
    }

    /// The server.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// `"127.0.0.1:<port>"`.
    pub fn addr(&self) -> &str {
        self.node.addr()
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.node.url()
    }
}

/// A temp dir for one topology, named after it.
pub(crate) fn tempdir(kind: &str) -> Result<TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("redis-testkit-{kind}-"))
        .tempdir()
        .map_err(|err| Error::io("creating a temp dir", err))
}
