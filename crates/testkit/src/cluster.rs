//! A Redis Cluster built by hand (`CLUSTER ADDSLOTSRANGE`, `MEET`,
//! `REPLICATE`), with manual failover and slot migration in observable steps.

use std::time::Duration;

use tempfile::TempDir;

use crate::binary::redis_server_binary;
use crate::error::{Error, Result};
use crate::node::{Node, NodeKind, NodeSpec};
use crate::replicated::wait_for_link_up;
use crate::standalone::tempdir;
use crate::wait::{Check, START_TIMEOUT, info_field, poll};

/// The number of hash slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// How long [`Cluster::failover`] waits for the replica to take over.
const FAILOVER_WAIT: Duration = Duration::from_secs(20);

/// How many keys one `MIGRATE` moves.
const MIGRATE_BATCH: usize = 100;

/// A Redis Cluster of `primaries` primaries with `replicas_per_primary`
/// replicas each, `cluster-node-timeout 1000`.
///
/// Primary `p` owns an even share of the 16384 slots (with 3 primaries:
/// 0–5460, 5461–10921, 10922–16383). Ready when every node reports
/// `cluster_state:ok` and `cluster_slots_ok:16384`, knows every node and
/// every replica, and every replica's link is up (≈2 s for 3+3).
///
/// [`primaries`](Self::primaries), [`replicas`](Self::replicas) and
/// [`replicas_of`](Self::replicas_of) describe the layout as started;
/// [`slot_owner`](Self::slot_owner) and
/// [`current_primaries`](Self::current_primaries) ask the cluster.
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> redis_resilience_testkit::Result<()> {
/// use std::time::Duration;
/// use redis_resilience_testkit::{Cluster, failover_guard};
///
/// let _serial = failover_guard().await?;
/// let cluster = Cluster::start(3, 1).await?;
/// let victim = &cluster.primaries()[0];
/// victim.kill()?;
/// let promoted = cluster.wait_for_promotion(victim, Duration::from_secs(15)).await?;
/// assert_eq!(promoted.addr(), cluster.replicas_of(victim)[0].addr());
/// cluster.wait_for_state_ok(Duration::from_secs(15)).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Cluster {
    /// Primaries first, then the replicas of primary 0, of primary 1, …
    nodes: Vec<Node>,
    primaries: usize,
    replicas_per_primary: usize,
    _dir: TempDir,
}

/// Builds a [`Cluster`] with extra config lines for every node.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `start` is awaited"]
pub struct ClusterBuilder {
    primaries: usize,
    replicas_per_primary: usize,
    extra: Vec<String>,
}

impl ClusterBuilder {
    /// Adds `key value` verbatim to every node's redis.conf, after the
    /// testkit's own lines (e.g. `.config("cluster-require-full-coverage", "no")`).
    pub fn config(mut self, key: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        self.extra
            .push(format!("{} {}", key.as_ref(), value.as_ref()));
        self
    }

    /// Starts the nodes, builds the cluster and waits until it is ready.
    ///
    /// # Errors
    ///
    /// [`Error::Topology`] with zero primaries; [`Error::BinaryNotFound`]
    /// without `redis-server`; [`Error::Timeout`] naming the node and the
    /// condition that did not hold.
    pub async fn start(self) -> Result<Cluster> {
        let primaries = self.primaries;
        let per = self.replicas_per_primary;
        if primaries == 0 || primaries > usize::from(SLOTS) {
            return Err(Error::Topology(format!(
                "a cluster needs between 1 and {SLOTS} primaries, not {primaries}"
            )));
        }
        let binary = redis_server_binary()?;
        let dir = tempdir("cluster")?;
        let names = (0..primaries)
            .map(|p| format!("primary-{p}"))
            .chain((0..primaries).flat_map(|p| (0..per).map(move |r| format!("replica-{p}-{r}"))));
        let mut nodes = Vec::with_capacity(primaries * (per + 1));
        for name in names {
            nodes.push(Node::spawn(NodeSpec {
                binary: &binary,
                parent: dir.path(),
                name,
                kind: NodeKind::Server,
                cluster: true,
                extra: self.extra.clone(),
                password: None,
            })?);
        }
        let cluster = Cluster {
            nodes,
            primaries,
            replicas_per_primary: per,
            _dir: dir,
        };
        cluster.create().await?;
        Ok(cluster)
    }
}

impl Cluster {
    /// Starts a cluster with the testkit's defaults, e.g. `Cluster::start(3, 1)`
    /// for 3 primaries and 3 replicas.
    ///
    /// # Errors
    ///
    /// As [`ClusterBuilder::start`].
    pub async fn start(primaries: usize, replicas_per_primary: usize) -> Result<Self> {
        Self::builder(primaries, replicas_per_primary).start().await
    }

    /// A builder for extra config lines.
    pub fn builder(primaries: usize, replicas_per_primary: usize) -> ClusterBuilder {
        ClusterBuilder {
            primaries,
            replicas_per_primary,
            extra: Vec::new(),
        }
    }

    async fn create(&self) -> Result<()> {
        for node in &self.nodes {
            node.wait_ready(START_TIMEOUT).await?;
        }
        for (epoch, node) in (1_u64..).zip(&self.nodes) {
            let id: String = node.query(&["CLUSTER", "MYID"]).await?;
            node.set_cluster_id(id);
            node.query::<()>(&["CLUSTER", "SET-CONFIG-EPOCH", &epoch.to_string()])
                .await?;
        }
        let slots = usize::from(SLOTS);
        for (p, primary) in self.primaries().iter().enumerate() {
            let first = p * slots / self.primaries;
            let last = (p + 1) * slots / self.primaries - 1;
            primary
                .query::<()>(&[
                    "CLUSTER",
                    "ADDSLOTSRANGE",
                    &first.to_string(),
                    &last.to_string(),
                ])
                .await?;
        }
        let first = &self.nodes[0];
        for node in &self.nodes[1..] {
            let bus = node.bus_port().unwrap_or_default().to_string();
            first
                .query::<()>(&[
                    "CLUSTER",
                    "MEET",
                    "127.0.0.1",
                    &node.port().to_string(),
                    &bus,
                ])
                .await?;
        }
        let total = self.nodes.len();
        for node in &self.nodes {
            poll(
                format!("{node} to know all {total} cluster nodes"),
                START_TIMEOUT,
                async || {
                    Ok(match node.query::<String>(&["CLUSTER", "NODES"]).await {
                        Ok(text) => {
                            let lines = parse_nodes(&text);
                            let settled = lines.iter().all(|line| {
                                !line.has_flag("handshake") && !line.has_flag("noaddr")
                            });
                            if lines.len() == total && settled {
                                Check::Ready(())
                            } else {
                                Check::Pending(text.replace('\n', " | "))
                            }
                        }
                        Err(err) => Check::Pending(err.to_string()),
                    })
                },
            )
            .await?;
        }
        for (p, primary) in self.primaries().iter().enumerate() {
            let id = primary.cluster_id().unwrap_or_default();
            for replica in self.replicas_of_index(p) {
                poll(
                    format!("{replica} to accept CLUSTER REPLICATE {id} ({primary})"),
                    START_TIMEOUT,
                    async || {
                        Ok(
                            match replica.query::<()>(&["CLUSTER", "REPLICATE", id]).await {
                                Ok(()) => Check::Ready(()),
                                Err(err) => Check::Pending(err.to_string()),
                            },
                        )
                    },
                )
                .await?;
            }
        }
        for replica in self.replicas() {
            wait_for_link_up(replica, START_TIMEOUT).await?;
        }
        let replicas = self.replicas().len();
        for node in &self.nodes {
            poll(
                format!(
                    "{node} to report cluster_state:ok, cluster_slots_ok:{SLOTS}, {total} known nodes and {replicas} replicas"
                ),
                START_TIMEOUT,
                async || {
                    let (info, text) = match (
                        node.query::<String>(&["CLUSTER", "INFO"]).await,
                        node.query::<String>(&["CLUSTER", "NODES"]).await,
                    ) {
                        (Ok(info), Ok(text)) => (info, text),
                        (Err(err), _) | (_, Err(err)) => return Ok(Check::Pending(err.to_string())),
                    };
                    let seen_replicas = parse_nodes(&text)
                        .iter()
                        .filter(|line| line.has_flag("slave"))
                        .count();
                    let known = info_field(&info, "cluster_known_nodes")
                        .and_then(|known| known.parse::<usize>().ok());
                    Ok(if state_ok(&info) && known == Some(total) && seen_replicas == replicas {
                        Check::Ready(())
                    } else {
                        Check::Pending(format!(
                            "cluster_state:{}, cluster_slots_ok:{}, known nodes {known:?}, replicas {seen_replicas}",
                            info_field(&info, "cluster_state").unwrap_or("?"),
                            info_field(&info, "cluster_slots_ok").unwrap_or("?"),
                        ))
                    })
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Every node: the primaries, then the replicas, as started.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The primaries as started.
    pub fn primaries(&self) -> &[Node] {
        &self.nodes[..self.primaries]
    }

    /// The replicas as started, those of primary 0 first.
    pub fn replicas(&self) -> &[Node] {
        &self.nodes[self.primaries..]
    }

    /// The replicas `primary` had when the cluster started (empty if
    /// `primary` is not one of [`primaries`](Self::primaries)).
    pub fn replicas_of(&self, primary: &Node) -> &[Node] {
        self.primaries()
            .iter()
            .position(|node| node.addr() == primary.addr())
            .map_or(&[], |p| self.replicas_of_index(p))
    }

    fn replicas_of_index(&self, p: usize) -> &[Node] {
        let start = self.primaries + p * self.replicas_per_primary;
        &self.nodes[start..start + self.replicas_per_primary]
    }

    /// The node at `addr` (`"127.0.0.1:<port>"`).
    pub fn node_by_addr(&self, addr: &str) -> Option<&Node> {
        self.nodes.iter().find(|node| node.addr() == addr)
    }

    /// The node with cluster node id `id`.
    pub fn node_by_id(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|node| node.cluster_id() == Some(id))
    }

    /// The running nodes that report `role:master` now.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when a running node does not answer.
    pub async fn current_primaries(&self) -> Result<Vec<&Node>> {
        let mut primaries = Vec::new();
        for node in self.nodes.iter().filter(|node| node.is_running()) {
            let info = node.info("replication").await?;
            if info_field(&info, "role") == Some("master") {
                primaries.push(node);
            }
        }
        Ok(primaries)
    }

    /// The node that owns `slot`, according to `CLUSTER NODES` on the first
    /// running node that answers.
    ///
    /// # Errors
    ///
    /// [`Error::Topology`] when no running node answers or none owns the slot.
    pub async fn slot_owner(&self, slot: u16) -> Result<&Node> {
        let mut last = String::from("no running node");
        for observer in self.nodes.iter().filter(|node| node.is_running()) {
            let text = match observer.query::<String>(&["CLUSTER", "NODES"]).await {
                Ok(text) => text,
                Err(err) => {
                    last = err.to_string();
                    continue;
                }
            };
            let owner = parse_nodes(&text)
                .into_iter()
                .find(|line| line.has_flag("master") && line.owns(slot));
            let Some(owner) = owner else {
                return Err(Error::Topology(format!(
                    "no node owns slot {slot} according to {observer}"
                )));
            };
            return self.node_by_addr(&owner.addr).ok_or_else(|| {
                Error::Topology(format!(
                    "{observer} says slot {slot} is owned by {}, which is not part of this cluster",
                    owner.addr
                ))
            });
        }
        Err(Error::Topology(format!(
            "could not ask the cluster who owns slot {slot}: {last}"
        )))
    }

    /// A graceful manual failover: `CLUSTER FAILOVER` on `replica`, then waits
    /// (up to 20 s) until it reports `role:master`. Takes ≈10 ms when the
    /// primary is healthy.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] if the node refuses (it is not a replica),
    /// [`Error::Timeout`] if it is not promoted.
    pub async fn failover(&self, replica: &Node) -> Result<()> {
        replica.query::<()>(&["CLUSTER", "FAILOVER"]).await?;
        poll(
            format!("{replica} to become a primary after CLUSTER FAILOVER"),
            FAILOVER_WAIT,
            async || Ok(role_is_master(replica).await),
        )
        .await
    }

    /// Waits until a replica of `old_primary` reports `role:master`, and
    /// returns it. The candidates are the running nodes that replicate
    /// `old_primary` when this is called, plus its replicas as started.
    ///
    /// Other nodes learn of the promotion a little later: follow with
    /// [`wait_for_state_ok`](Self::wait_for_state_ok) for a cluster-wide view.
    ///
    /// # Errors
    ///
    /// [`Error::Topology`] when `old_primary` has no replica;
    /// [`Error::Timeout`] when none is promoted in time.
    pub async fn wait_for_promotion(&self, old_primary: &Node, timeout: Duration) -> Result<&Node> {
        let mut candidates: Vec<&Node> = self.replicas_of(old_primary).iter().collect();
        for node in self.nodes.iter().filter(|node| node.is_running()) {
            if node.addr() == old_primary.addr()
                || candidates.iter().any(|c| c.addr() == node.addr())
            {
                continue;
            }
            if let Ok(info) = node.info("replication").await {
                let port = old_primary.port().to_string();
                if info_field(&info, "role") == Some("slave")
                    && info_field(&info, "master_port") == Some(port.as_str())
                {
                    candidates.push(node);
                }
            }
        }
        if candidates.is_empty() {
            return Err(Error::Topology(format!(
                "{old_primary} has no replica that could be promoted"
            )));
        }
        let names: Vec<String> = candidates.iter().map(ToString::to_string).collect();
        poll(
            format!(
                "one of {} to be promoted in place of {old_primary}",
                names.join(", ")
            ),
            timeout,
            async || {
                let mut last = Vec::new();
                for candidate in candidates.iter().filter(|node| node.is_running()) {
                    match role_is_master(candidate).await {
                        Check::Ready(()) => return Ok(Check::Ready(*candidate)),
                        Check::Pending(seen) => last.push(format!("{}: {seen}", candidate.name())),
                    }
                }
                Ok(Check::Pending(last.join(", ")))
            },
        )
        .await
    }

    /// Waits until every running node reports `cluster_state:ok` and
    /// `cluster_slots_ok:16384`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] naming the first node that did not.
    pub async fn wait_for_state_ok(&self, timeout: Duration) -> Result<()> {
        for node in self.nodes.iter().filter(|node| node.is_running()) {
            poll(
                format!("{node} to report cluster_state:ok and cluster_slots_ok:{SLOTS}"),
                timeout,
                async || {
                    Ok(match node.query::<String>(&["CLUSTER", "INFO"]).await {
                        Ok(info) if state_ok(&info) => Check::Ready(()),
                        Ok(info) => Check::Pending(format!(
                            "cluster_state:{}, cluster_slots_ok:{}",
                            info_field(&info, "cluster_state").unwrap_or("?"),
                            info_field(&info, "cluster_slots_ok").unwrap_or("?"),
                        )),
                        Err(err) => Check::Pending(err.to_string()),
                    })
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Prepares moving `slot` from its current owner to the primary `to`, in
    /// steps a test can observe between: see [`SlotMigration`].
    ///
    /// # Errors
    ///
    /// [`Error::Topology`] when `to` is not a node of this cluster or already
    /// owns the slot, or the owner cannot be found.
    pub async fn slot_migration(&self, slot: u16, to: &Node) -> Result<SlotMigration<'_>> {
        if slot >= SLOTS {
            return Err(Error::Topology(format!(
                "slot {slot} is out of range 0..{SLOTS}"
            )));
        }
        let target = self
            .node_by_addr(to.addr())
            .ok_or_else(|| Error::Topology(format!("{to} is not a node of this cluster")))?;
        let source = self.slot_owner(slot).await?;
        if source.addr() == target.addr() {
            return Err(Error::Topology(format!(
                "{target} already owns slot {slot}"
            )));
        }
        let source_id = cluster_id(source)?.to_owned();
        let target_id = cluster_id(target)?.to_owned();
        Ok(SlotMigration {
            cluster: self,
            slot,
            source,
            target,
            source_id,
            target_id,
        })
    }

    /// Moves `slot` to `to` in one go (all three steps of [`SlotMigration`])
    /// and returns how many keys moved.
    ///
    /// # Errors
    ///
    /// As [`slot_migration`](Self::slot_migration) and the steps.
    pub async fn migrate_slot(&self, slot: u16, to: &Node) -> Result<usize> {
        let migration = self.slot_migration(slot, to).await?;
        migration.begin().await?;
        let moved = migration.move_keys().await?;
        migration.finish().await?;
        Ok(moved)
    }
}

/// One slot's move from its owner (`source`) to another primary (`target`),
/// step by step, as `redis-cli --cluster reshard` does it:
///
/// 1. [`begin`](Self::begin): `CLUSTER SETSLOT <slot> IMPORTING <source-id>`
///    on the target, `CLUSTER SETSLOT <slot> MIGRATING <target-id>` on the
///    source. The source now answers `ASK <slot> <target>` for keys it no
///    longer has.
/// 2. [`move_keys`](Self::move_keys): `CLUSTER GETKEYSINSLOT` and
///    `MIGRATE 127.0.0.1 <port> "" 0 5000 KEYS …` until the slot is empty on
///    the source.
/// 3. [`finish`](Self::finish): `CLUSTER SETSLOT <slot> NODE <target-id>` on
///    the target, the source and every other primary. The source now answers
///    `MOVED <slot> <target>`.
#[derive(Debug)]
pub struct SlotMigration<'a> {
    cluster: &'a Cluster,
    slot: u16,
    source: &'a Node,
    target: &'a Node,
    source_id: String,
    target_id: String,
}

impl<'a> SlotMigration<'a> {
    /// The slot being moved.
    pub fn slot(&self) -> u16 {
        self.slot
    }

    /// The slot's owner when the migration was prepared.
    pub fn source(&self) -> &'a Node {
        self.source
    }

    /// The primary the slot moves to.
    pub fn target(&self) -> &'a Node {
        self.target
    }

    /// Step 1: marks the slot IMPORTING on the target and MIGRATING on the source.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when a node refuses.
    pub async fn begin(&self) -> Result<()> {
        let slot = self.slot.to_string();
        self.target
            .query::<()>(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &self.source_id])
            .await?;
        self.source
            .query::<()>(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &self.target_id])
            .await
    }

    /// Step 2: moves every key of the slot from the source to the target and
    /// returns how many moved.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when `GETKEYSINSLOT` or `MIGRATE` fails.
    pub async fn move_keys(&self) -> Result<usize> {
        let mut moved = 0;
        loop {
            let mut getkeys = redis::cmd("CLUSTER");
            getkeys
                .arg("GETKEYSINSLOT")
                .arg(self.slot)
                .arg(MIGRATE_BATCH);
            let keys: Vec<Vec<u8>> = self.source.query_cmd(&getkeys).await?;
            if keys.is_empty() {
                return Ok(moved);
            }
            let mut migrate = redis::cmd("MIGRATE");
            migrate
                .arg("127.0.0.1")
                .arg(self.target.port())
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys);
            let _: redis::Value = self.source.query_cmd(&migrate).await?;
            moved += keys.len();
        }
    }

    /// Step 3: assigns the slot to the target on the target, the source and
    /// every other running primary.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when a node refuses.
    pub async fn finish(&self) -> Result<()> {
        let slot = self.slot.to_string();
        let assign = [
            "CLUSTER",
            "SETSLOT",
            slot.as_str(),
            "NODE",
            self.target_id.as_str(),
        ];
        self.target.query::<()>(&assign).await?;
        self.source.query::<()>(&assign).await?;
        for node in self.cluster.nodes.iter().filter(|node| node.is_running()) {
            if node.addr() == self.target.addr() || node.addr() == self.source.addr() {
                continue;
            }
            let info = node.info("replication").await?;
            if info_field(&info, "role") == Some("master") {
                node.query::<()>(&assign).await?;
            }
        }
        Ok(())
    }
}

fn cluster_id(node: &Node) -> Result<&str> {
    node.cluster_id()
        .ok_or_else(|| Error::Topology(format!("{node} has no cluster node id")))
}

fn state_ok(info: &str) -> bool {
    let slots = SLOTS.to_string();
    info_field(info, "cluster_state") == Some("ok")
        && info_field(info, "cluster_slots_ok") == Some(slots.as_str())
}

async fn role_is_master(node: &Node) -> Check<()> {
    match node.info("replication").await {
        Ok(info) => match info_field(&info, "role") {
            Some("master") => Check::Ready(()),
            other => Check::Pending(format!("role:{}", other.unwrap_or("?"))),
        },
        Err(err) => Check::Pending(err.to_string()),
    }
}

/// One line of `CLUSTER NODES`.
#[derive(Debug)]
struct NodeLine {
    addr: String,
    flags: Vec<String>,
    slots: Vec<(u16, u16)>,
}

impl NodeLine {
    fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    fn owns(&self, slot: u16) -> bool {
        self.slots
            .iter()
            .any(|(first, last)| (*first..=*last).contains(&slot))
    }
}

fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                return None;
            }
            let addr = fields[1].split('@').next().unwrap_or_default().to_owned();
            let flags = fields[2].split(',').map(str::to_owned).collect();
            let slots = fields[8..]
                .iter()
                .filter(|range| !range.starts_with('['))
                .filter_map(|range| match range.split_once('-') {
                    Some((first, last)) => Some((first.parse().ok()?, last.parse().ok()?)),
                    None => range.parse().ok().map(|slot| (slot, slot)),
                })
                .collect();
            Some(NodeLine { addr, flags, slots })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cluster_nodes() {
        let text = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 7000 [5461->-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]
";
        let lines = parse_nodes(text);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].has_flag("slave"));
        assert_eq!(lines[1].addr, "127.0.0.1:30001");
        assert!(lines[1].has_flag("master"));
        assert!(lines[1].owns(0) && lines[1].owns(5460) && lines[1].owns(7000));
        assert!(!lines[1].owns(5461));
    }
}
