//! One master and N replicas, without Sentinel.

use std::time::Duration;

use tempfile::TempDir;

use crate::binary::redis_server_binary;
use crate::error::Result;
use crate::node::{Node, NodeKind, NodeSpec};
use crate::standalone::tempdir;
use crate::wait::{Check, START_TIMEOUT, info_field, poll};

/// A master with `replicas` replicas (`replicaof`), ready once every replica
/// reports `master_link_status:up`.
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> redis_resilience_testkit::Result<()> {
/// use redis_resilience_testkit::Replicated;
///
/// let topology = Replicated::start(2).await?;
/// let _: () = topology.master().query(&["SET", "k", "v"]).await?;
/// topology.wait_for_replication(std::time::Duration::from_secs(5)).await?;
/// let seen: Option<String> = topology.replicas()[0].query(&["GET", "k"]).await?;
/// assert_eq!(seen.as_deref(), Some("v"));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Replicated {
    master: Node,
    replicas: Vec<Node>,
    _dir: TempDir,
}

impl Replicated {
    /// Starts the master and `replicas` replicas and waits until every
    /// replica's link to the master is up.
    ///
    /// # Errors
    ///
    /// [`Error::BinaryNotFound`](crate::Error::BinaryNotFound) without
    /// `redis-server`; [`Error::Timeout`](crate::Error::Timeout) naming the
    /// replica whose link did not come up.
    pub async fn start(replicas: usize) -> Result<Self> {
        let binary = redis_server_binary()?;
        let dir = tempdir("replicated")?;
        let (master, replicas) = start_data_nodes(&binary, dir.path(), "master", replicas).await?;
        Ok(Self {
            master,
            replicas,
            _dir: dir,
        })
    }

    /// The master as started.
    pub fn master(&self) -> &Node {
        &self.master
    }

    /// The replicas as started.
    pub fn replicas(&self) -> &[Node] {
        &self.replicas
    }

    /// The master followed by the replicas.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        std::iter::once(&self.master).chain(&self.replicas)
    }

    /// Waits until every running replica has caught up with the master's
    /// replication offset (so a write to the master is visible on them).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`](crate::Error::Timeout) naming the lagging replica.
    pub async fn wait_for_replication(&self, timeout: Duration) -> Result<()> {
        wait_for_offsets(&self.master, &self.replicas, timeout).await
    }
}

/// Starts a master and `count` replicas of it in `parent`, and waits until
/// every replica's link is up.
pub(crate) async fn start_data_nodes(
    binary: &std::path::Path,
    parent: &std::path::Path,
    master_name: &str,
    count: usize,
) -> Result<(Node, Vec<Node>)> {
    let master = Node::spawn(NodeSpec {
        binary,
        parent,
        name: master_name.to_owned(),
        kind: NodeKind::Server,
        cluster: false,
        extra: Vec::new(),
        password: None,
    })?;
    let mut replicas = Vec::with_capacity(count);
    for index in 0..count {
        replicas.push(Node::spawn(NodeSpec {
            binary,
            parent,
            name: format!("replica-{index}"),
            kind: NodeKind::Server,
            cluster: false,
            extra: vec![format!("replicaof 127.0.0.1 {}", master.port())],
            password: None,
        })?);
    }
    master.wait_ready(START_TIMEOUT).await?;
    for replica in &replicas {
        replica.wait_ready(START_TIMEOUT).await?;
    }
    for replica in &replicas {
        wait_for_link_up(replica, START_TIMEOUT).await?;
    }
    Ok((master, replicas))
}

/// Waits until `replica` reports `master_link_status:up`.
pub(crate) async fn wait_for_link_up(replica: &Node, timeout: Duration) -> Result<()> {
    poll(
        format!("{replica} to report master_link_status:up"),
        timeout,
        async || {
            let info = match replica.info("replication").await {
                Ok(info) => info,
                Err(err) => return Ok(Check::Pending(err.to_string())),
            };
            Ok(match info_field(&info, "master_link_status") {
                Some("up") => Check::Ready(()),
                other => {
                    Check::Pending(format!("master_link_status:{}", other.unwrap_or("absent")))
                }
            })
        },
    )
    .await
}

/// Waits until every running replica's offset reaches the master's.
pub(crate) async fn wait_for_offsets(
    master: &Node,
    replicas: &[Node],
    timeout: Duration,
) -> Result<()> {
    let info = master.info("replication").await?;
    let target: u64 = info_field(&info, "master_repl_offset")
        .and_then(|offset| offset.parse().ok())
        .unwrap_or_default();
    for replica in replicas.iter().filter(|replica| replica.is_running()) {
        poll(
            format!("{replica} to reach replication offset {target} of {master}"),
            timeout,
            async || {
                let info = match replica.info("replication").await {
                    Ok(info) => info,
                    Err(err) => return Ok(Check::Pending(err.to_string())),
                };
                let offset: u64 = info_field(&info, "slave_repl_offset")
                    .and_then(|offset| offset.parse().ok())
                    .unwrap_or_default();
                Ok(if offset >= target {
                    Check::Ready(())
                } else {
                    Check::Pending(format!("slave_repl_offset:{offset}"))
                })
            },
        )
        .await?;
    }
    Ok(())
}
