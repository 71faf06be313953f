//! A master, its replicas and a group of Sentinels watching them.

use std::collections::HashMap;
use std::time::Duration;

use tempfile::TempDir;

use crate::binary::redis_server_binary;
use crate::error::{Error, Result};
use crate::node::{Node, NodeKind, NodeSpec};
use crate::replicated::{start_data_nodes, wait_for_offsets};
use crate::standalone::tempdir;
use crate::wait::{Check, START_TIMEOUT, info_field, poll};

/// The name every testkit Sentinel monitors the master under.
pub const MASTER_NAME: &str = "mymaster";

/// `down-after-milliseconds` for the monitored master.
const DOWN_AFTER_MS: u64 = 1000;
/// `failover-timeout` for the monitored master.
const FAILOVER_TIMEOUT_MS: u64 = 4000;
/// How long [`Sentinel::failover`] waits for the new master.
const FAILOVER_WAIT: Duration = Duration::from_secs(20);

/// A Sentinel deployment: one master, `replicas` replicas and `sentinels`
/// Sentinels with quorum `sentinels / 2 + 1`, master name `"mymaster"`.
///
/// Test settings: `down-after-milliseconds 1000`, `failover-timeout 4000`,
/// and `SENTINEL DEBUG info-period 1000 publish-period 500 ping-period 500`.
/// A killed master is replaced in about 2–3 s.
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> redis_resilience_testkit::Result<()> {
/// use std::time::Duration;
/// use redis_resilience_testkit::{Sentinel, failover_guard};
///
/// let _serial = failover_guard().await?;
/// let topology = Sentinel::start(1, 3).await?;
/// let old = topology.current_master().await?;
/// old.kill()?;
/// let new = topology.wait_for_new_master(old, Duration::from_secs(20)).await?;
/// assert_ne!(new.addr(), old.addr());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Sentinel {
    /// The master as started, then the replicas.
    data: Vec<Node>,
    sentinels: Vec<Node>,
    quorum: usize,
    _dir: TempDir,
}

impl Sentinel {
    /// Starts the data nodes, then the Sentinels, and waits until every
    /// Sentinel names the master, knows all replicas and knows every other
    /// Sentinel.
    ///
    /// # Errors
    ///
    /// [`Error::BinaryNotFound`] without `redis-server`; [`Error::Timeout`]
    /// naming the Sentinel and what it did not see yet.
    pub async fn start(replicas: usize, sentinels: usize) -> Result<Self> {
        let binary = redis_server_binary()?;
        let dir = tempdir("sentinel")?;
        let (master, replica_nodes) =
            start_data_nodes(&binary, dir.path(), "master", replicas).await?;
        let quorum = sentinels / 2 + 1;
        let mut sentinel_nodes = Vec::with_capacity(sentinels);
        for index in 0..sentinels {
            sentinel_nodes.push(Node::spawn(NodeSpec {
                binary: &binary,
                parent: dir.path(),
                name: format!("sentinel-{index}"),
                kind: NodeKind::Sentinel,
                cluster: false,
                extra: vec![
                    format!(
                        "sentinel monitor {MASTER_NAME} 127.0.0.1 {} {quorum}",
                        master.port()
                    ),
                    format!("sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}"),
                    format!("sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}"),
                    format!("sentinel parallel-syncs {MASTER_NAME} 1"),
                ],
                password: None,
            })?);
        }
        for sentinel in &sentinel_nodes {
            sentinel.wait_ready(START_TIMEOUT).await?;
            speed_up(sentinel).await?;
        }
        let mut data = Vec::with_capacity(replicas + 1);
        data.push(master);
        data.extend(replica_nodes);
        let topology = Self {
            data,
            sentinels: sentinel_nodes,
            quorum,
            _dir: dir,
        };
        for sentinel in &topology.sentinels {
            topology.wait_until_sentinel_knows_all(sentinel).await?;
        }
        Ok(topology)
    }

    async fn wait_until_sentinel_knows_all(&self, sentinel: &Node) -> Result<()> {
        let master = self.initial_master();
        let replicas = self.data.len() - 1;
        let others = self.sentinels.len() - 1;
        poll(
            format!(
                "{sentinel} to name {master} as master of {MASTER_NAME}, see {replicas} replicas and {others} other sentinels"
            ),
            START_TIMEOUT,
            async || {
                Ok(match sentinel_view(sentinel).await {
                    Ok((addr, seen_replicas, seen_sentinels)) => {
                        if addr == master.addr() && seen_replicas == replicas && seen_sentinels == others {
                            Check::Ready(())
                        } else {
                            Check::Pending(format!(
                                "master {addr}, {seen_replicas} healthy replicas, {seen_sentinels} sentinels"
                            ))
                        }
                    }
                    Err(err) => Check::Pending(err.to_string()),
                })
            },
        )
        .await
    }

    /// The monitored master's name, `"mymaster"`.
    pub fn master_name(&self) -> &str {
        MASTER_NAME
    }

    /// The quorum the Sentinels were configured with.
    pub fn quorum(&self) -> usize {
        self.quorum
    }

    /// The Sentinels.
    pub fn sentinels(&self) -> &[Node] {
        &self.sentinels
    }

    /// The Sentinels' addresses, `"127.0.0.1:<port>"`.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|node| node.addr().to_owned())
            .collect()
    }

    /// The master as started (it may have been failed over since: see
    /// [`current_master`](Self::current_master)).
    pub fn initial_master(&self) -> &Node {
        &self.data[0]
    }

    /// The replicas as started.
    pub fn replicas(&self) -> &[Node] {
        &self.data[1..]
    }

    /// Every data node: the master as started, then the replicas.
    pub fn data_nodes(&self) -> &[Node] {
        &self.data
    }

    /// The data node or Sentinel at `addr` (`"127.0.0.1:<port>"`).
    pub fn node_by_addr(&self, addr: &str) -> Option<&Node> {
        self.data
            .iter()
            .chain(&self.sentinels)
            .find(|node| node.addr() == addr)
    }

    /// The master as named by the first running Sentinel that answers
    /// `SENTINEL get-master-addr-by-name mymaster`.
    ///
    /// # Errors
    ///
    /// [`Error::Topology`] when no Sentinel answers or the address is not one
    /// of this topology's data nodes.
    pub async fn current_master(&self) -> Result<&Node> {
        let mut last = String::from("no running sentinel");
        for sentinel in self.sentinels.iter().filter(|node| node.is_running()) {
            match master_addr(sentinel).await {
                Ok(addr) => {
                    return self.node_by_addr(&addr).ok_or_else(|| {
                        Error::Topology(format!(
                            "{sentinel} names {addr} as master, which is not part of this topology"
                        ))
                    });
                }
                Err(err) => last = err.to_string(),
            }
        }
        Err(Error::Topology(format!(
            "no sentinel named the master of {MASTER_NAME}: {last}"
        )))
    }

    /// The data nodes other than the current master.
    ///
    /// # Errors
    ///
    /// As [`current_master`](Self::current_master).
    pub async fn current_replicas(&self) -> Result<Vec<&Node>> {
        let master = self.current_master().await?;
        Ok(self
            .data
            .iter()
            .filter(|node| node.addr() != master.addr())
            .collect())
    }

    /// Polls the running Sentinels until one names a master other than `old`
    /// that itself reports `role:master`, and returns it.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] with the last answer seen.
    pub async fn wait_for_new_master(&self, old: &Node, timeout: Duration) -> Result<&Node> {
        poll(
            format!("a sentinel to name a master of {MASTER_NAME} other than {old}"),
            timeout,
            async || {
                let mut last = String::from("no running sentinel");
                for sentinel in self.sentinels.iter().filter(|node| node.is_running()) {
                    let addr = match master_addr(sentinel).await {
                        Ok(addr) => addr,
                        Err(err) => {
                            last = err.to_string();
                            continue;
                        }
                    };
                    if addr == old.addr() {
                        last = format!("{sentinel} still names {addr}");
                        continue;
                    }
                    let Some(node) = self.node_by_addr(&addr) else {
                        last = format!("{sentinel} names unknown {addr}");
                        continue;
                    };
                    match node.info("replication").await {
                        Ok(info) if info_field(&info, "role") == Some("master") => {
                            return Ok(Check::Ready(node));
                        }
                        Ok(info) => {
                            last = format!(
                                "{sentinel} names {addr}, which reports role:{}",
                                info_field(&info, "role").unwrap_or("?")
                            );
                        }
                        Err(err) => last = err.to_string(),
                    }
                }
                Ok(Check::Pending(last))
            },
        )
        .await
    }

    /// Asks a Sentinel for a manual failover (`SENTINEL FAILOVER mymaster`)
    /// and waits (up to 20 s) for the new master, which it returns.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] if the Sentinel refuses (e.g. `NOGOODSLAVE`),
    /// [`Error::Timeout`] if no new master shows up.
    pub async fn failover(&self) -> Result<&Node> {
        let old = self.current_master().await?;
        let sentinel = self
            .sentinels
            .iter()
            .find(|node| node.is_running())
            .ok_or_else(|| {
                Error::Topology("no running sentinel to ask for a failover".to_owned())
            })?;
        sentinel
            .query::<()>(&["SENTINEL", "FAILOVER", MASTER_NAME])
            .await?;
        self.wait_for_new_master(old, FAILOVER_WAIT).await
    }

    /// Waits until every running data node other than the current master has
    /// caught up with the master's replication offset.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] naming the lagging replica.
    pub async fn wait_for_replication(&self, timeout: Duration) -> Result<()> {
        let master = self.current_master().await?;
        let replicas: Vec<&Node> = self
            .data
            .iter()
            .filter(|node| node.addr() != master.addr())
            .collect();
        for replica in replicas {
            wait_for_offsets(master, std::slice::from_ref(replica), timeout).await?;
        }
        Ok(())
    }
}

/// Applies the fast test periods. Keys a Sentinel refuses are dropped one at
/// a time, so the others still apply.
async fn speed_up(sentinel: &Node) -> Result<()> {
    let mut settings = vec![
        ("info-period", "1000"),
        ("publish-period", "500"),
        ("ping-period", "500"),
    ];
    while !settings.is_empty() {
        let mut args = vec!["SENTINEL", "DEBUG"];
        for (key, value) in &settings {
            args.extend([*key, *value]);
        }
        match sentinel.query::<()>(&args).await {
            Ok(()) => return Ok(()),
            Err(err) => {
                let message = err.to_string();
                let before = settings.len();
                settings.retain(|(key, _)| !message.contains(key));
                if settings.len() == before {
                    // The error names no key (e.g. SENTINEL DEBUG is unknown):
                    // run with Redis' default periods.
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

async fn master_addr(sentinel: &Node) -> Result<String> {
    let reply: Option<(String, String)> = sentinel
        .query(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME])
        .await?;
    let (host, port) = reply.ok_or_else(|| {
        Error::Topology(format!(
            "{sentinel} does not know a master named {MASTER_NAME}"
        ))
    })?;
    Ok(format!("{host}:{port}"))
}

/// What a Sentinel sees: the master's address, its healthy replicas and the
/// other Sentinels.
async fn sentinel_view(sentinel: &Node) -> Result<(String, usize, usize)> {
    let addr = master_addr(sentinel).await?;
    let replicas: Vec<HashMap<String, String>> = sentinel
        .query(&["SENTINEL", "REPLICAS", MASTER_NAME])
        .await?;
    let healthy = replicas
        .iter()
        .filter(|replica| {
            replica
                .get("flags")
                .is_some_and(|flags| !flags.contains("s_down") && !flags.contains("disconnected"))
                && replica.get("master-link-status").map(String::as_str) == Some("ok")
        })
        .count();
    let sentinels: Vec<HashMap<String, String>> = sentinel
        .query(&["SENTINEL", "SENTINELS", MASTER_NAME])
        .await?;
    Ok((addr, healthy, sentinels.len()))
}
