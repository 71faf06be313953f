//! The cluster backend: per-node multiplexed connections routed by slot.
//!
//! - The slot map comes from `CLUSTER SHARDS` (`CLUSTER SLOTS` on servers
//!   before 7.0). It is refreshed by one background task: at most once per
//!   `cluster_refresh_min_interval` however many triggers arrive (MOVED,
//!   connection failures, timeouts, uncovered slots, `CLUSTERDOWN`), and at
//!   least every `cluster_refresh_interval`; the map is swapped only when its
//!   hash changed.
//! - `MOVED` goes back to the caller (following it is `RedirectLayer`'s job),
//!   but the one slot is patched in the map at once, so the next request for
//!   it goes straight to the new owner.
//! - `Route::Asking` sends `ASKING` and the command in one write on the
//!   target's connection. Replica connections are put in `READONLY` mode.
//! - Multi-key commands across slots are split per slot and merged for
//!   `MGET`/`MSET`/`DEL`/`UNLINK`/`EXISTS`/`TOUCH`; other cross-slot commands
//!   and pipelines are refused with `CrossSlot` before anything is sent.
//! - Partial coverage: slots of live shards keep being served while another
//!   shard is down; requests for an uncovered slot fail at once with
//!   `ClusterDown` (`Sent::No`).
//! - Keyless commands go to one primary (round robin) — except those whose
//!   answer or effect would silently cover one shard only (`KEYS`, `SCAN`,
//!   `DBSIZE`, `RANDOMKEY`, `FLUSHALL`, `FLUSHDB`, `SCRIPT LOAD|FLUSH`,
//!   `FUNCTION LOAD|DELETE|FLUSH|RESTORE`, `CONFIG SET`): those are refused
//!   with `Config` unless routed to a node with `Route::Node`, once per node of
//!   `RedisTopology::primaries()`. Per-node diagnostics (`PING`, `INFO`,
//!   `SLOWLOG`, …) go to any primary.

mod slot_map;
mod split;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use redis::Value;
use redis_resilience_core::{
    Error, ErrorKind, KeySlot, NodeAddr, NodeHealth, ReadFrom, Request, Response, Route, Sent,
    ServedBy,
};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::{AddressMap, Config};
use crate::connection::{ConnectSettings, NodeConnection};
use crate::endpoint::{ClientFactory, Endpoint};
use crate::service::{Backend, Shared};
use slot_map::SlotMap;

/// Keyless commands whose answer or effect on one node would silently cover
/// one shard only.
const SHARD_WIDE: &[&str] = &[
    "config|set",
    "dbsize",
    "flushall",
    "flushdb",
    "function|delete",
    "function|flush",
    "function|load",
    "function|restore",
    "keys",
    "randomkey",
    "scan",
    "script|flush",
    "script|load",
];

/// What the cluster looked like at the last refresh.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterHealth {
    /// `cluster_state:ok` on the node that answered the refresh.
    pub state_ok: bool,
    /// Slots assigned to some shard (`cluster_slots_assigned`).
    pub slots_assigned: usize,
    /// Slots whose shard is not failing (`cluster_slots_ok`).
    pub slots_ok: usize,
    /// Nodes the cluster marks failed.
    pub failing_nodes: Vec<NodeAddr>,
    /// Slots that answered `ASK` since the last change of the slot map.
    pub migrating_slots: Vec<u16>,
}

/// Why a refresh was asked for (the `trigger` label of `redis_topology_refreshes_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Moved,
    Connection,
    Timeout,
    Uncovered,
    ClusterDown,
    NoReplica,
    Periodic,
}

impl Trigger {
    fn label(self) -> &'static str {
        match self {
            Self::Moved => "moved",
            Self::Connection => "connection",
            Self::Timeout => "timeout",
            Self::Uncovered => "uncovered",
            Self::ClusterDown => "cluster_down",
            Self::NoReplica => "no_replica",
            Self::Periodic => "periodic",
        }
    }
}

/// Wake-ups for the refresh task, apart from the backend so the task does not keep it alive.
#[derive(Debug)]
struct RefreshSignal {
    notify: Notify,
    trigger: Mutex<Option<Trigger>>,
}

#[derive(Debug)]
pub(crate) struct Cluster {
    factory: ClientFactory,
    settings: ConnectSettings,
    address_map: Option<AddressMap>,
    seeds: Vec<NodeAddr>,
    response_timeout: Duration,
    refresh_interval: Duration,
    refresh_min_interval: Duration,
    map: RwLock<Arc<SlotMap>>,
    nodes: RwLock<HashMap<NodeAddr, Arc<NodeConnection>>>,
    signal: Arc<RefreshSignal>,
    generation: AtomicU64,
    health: RwLock<ClusterHealth>,
    asked: Mutex<BTreeSet<u16>>,
    next: AtomicUsize,
}

impl Cluster {
    pub(crate) async fn start(
        seeds: Vec<Endpoint>,
        config: &Config,
        factory: ClientFactory,
    ) -> Result<Self, Error> {
        let cluster = Self {
            factory,
            settings: crate::service::connect_settings(config),
            address_map: config.address_map.clone(),
            seeds: seeds.iter().map(|seed| seed.addr.clone()).collect(),
            response_timeout: config.response_timeout,
            refresh_interval: config.cluster_refresh_interval,
            refresh_min_interval: config.cluster_refresh_min_interval,
            map: RwLock::new(Arc::new(SlotMap::empty())),
            nodes: RwLock::new(HashMap::new()),
            signal: Arc::new(RefreshSignal {
                notify: Notify::new(),
                trigger: Mutex::new(None),
            }),
            generation: AtomicU64::new(0),
            health: RwLock::new(ClusterHealth::default()),
            asked: Mutex::new(BTreeSet::new()),
            next: AtomicUsize::new(0),
        };
        let mut failures = Vec::new();
        for seed in &cluster.seeds {
            match cluster.read_topology(seed).await {
                Ok((map, health)) => {
                    cluster.install(map, health, "initial");
                    return Ok(cluster);
                }
                Err(err) if err.kind() == &ErrorKind::Config || err.kind() == &ErrorKind::Auth => {
                    return Err(err);
                }
                Err(err) => failures.push(format!("{seed}: {err}")),
            }
        }
        Err(Error::connect(format!(
            "no seed node answered CLUSTER SHARDS: {}",
            failures.join("; ")
        )))
    }

    /// Starts the refresh task; it ends once the service is dropped.
    pub(crate) fn spawn_refresher(&self, shared: &Weak<Shared>) {
        tokio::spawn(refresh_loop(Weak::clone(shared), Arc::clone(&self.signal)));
    }

    pub(crate) async fn call(
        &self,
        request: Request,
        deadline: Instant,
    ) -> Result<Response, Error> {
        let slot = request.slot();
        let name = request.info().name();
        if slot == KeySlot::NoKeys && request.route().node().is_none() && SHARD_WIDE.contains(&name)
        {
            return Err(Error::config(format!(
                "{} must run on every primary of a cluster: send it to each of \
                 RedisTopology::primaries() with Route::Node",
                name.to_ascii_uppercase()
            )));
        }
        if slot == KeySlot::Cross {
            return self.call_split(&request, deadline).await;
        }
        let (node, replica) = match request.route() {
            Route::Node(addr) | Route::Asking(addr) => (addr.clone(), self.map().is_replica(addr)),
            Route::Replica(read_from) => {
                if !request.info().is_readonly() {
                    return Err(Error::config(
                        "only read-only commands can be routed to a replica",
                    ));
                }
                (self.replica_for(slot, *read_from, true)?, true)
            }
            _ => (self.primary_for(slot)?, false),
        };
        let asking = matches!(request.route(), Route::Asking(_));
        let value = self.send_to(&node, &request, asking, deadline).await?;
        let served_by = if replica {
            ServedBy::Replica(Some(node))
        } else {
            ServedBy::Primary(Some(node))
        };
        Ok(Response::new(value, served_by))
    }

    /// Sends to one node, reacting to what its errors say about the topology.
    async fn send_to(
        &self,
        node: &NodeAddr,
        request: &Request,
        asking: bool,
        deadline: Instant,
    ) -> Result<Value, Error> {
        let conn = self.connection(node)?;
        match conn.send(request, asking, deadline).await {
            Ok(value) => Ok(value),
            Err(err) => Err(self.observe(node, err)),
        }
    }

    /// Patches the map on `MOVED`, notes `ASK`, and asks for a refresh when an
    /// error says the map may be stale.
    fn observe(&self, node: &NodeAddr, err: Error) -> Error {
        match err.kind() {
            ErrorKind::Moved { slot, addr } => {
                // `MOVED 3999 :6381`: the unknown-endpoint form means the replying node's host.
                let (slot, addr) = (*slot, addr.clone());
                let (addr, err) = if addr.host().is_empty() {
                    let resolved = NodeAddr::new(node.host(), addr.port());
                    let err = Error::new(
                        ErrorKind::Moved {
                            slot,
                            addr: resolved.clone(),
                        },
                        err.sent(),
                        format!("MOVED {slot} {resolved}"),
                    );
                    (resolved, err)
                } else {
                    (addr, err)
                };
                let patched = self.map().with_slot_moved(slot, &addr);
                self.swap_map(Arc::new(patched));
                self.request_refresh(Trigger::Moved);
                err
            }
            ErrorKind::Ask { slot, .. } => {
                if let Ok(mut asked) = self.asked.lock() {
                    asked.insert(*slot);
                }
                err
            }
            ErrorKind::Connect | ErrorKind::Io => {
                self.request_refresh(Trigger::Connection);
                err
            }
            // A paused primary still accepts connects; only timeouts reveal it.
            ErrorKind::Timeout => {
                self.request_refresh(Trigger::Timeout);
                err
            }
            ErrorKind::ClusterDown => {
                self.request_refresh(Trigger::ClusterDown);
                err
            }
            _ => err,
        }
    }

    async fn call_split(&self, request: &Request, deadline: Instant) -> Result<Response, Error> {
        let Some(split) = split::split(request) else {
            return Err(Error::cross_slot());
        };
        let to_replica = match request.route() {
            Route::Replica(read_from) if request.info().is_readonly() => Some(*read_from),
            Route::Replica(_) => {
                return Err(Error::config(
                    "only read-only commands can be routed to a replica",
                ));
            }
            // A redirect names one node, but the parts go where the (patched) map says.
            _ => None,
        };
        let mut targets = Vec::with_capacity(split.parts.len());
        for (slot, _) in &split.parts {
            let slot = KeySlot::Single(*slot);
            targets.push(match to_replica {
                Some(read_from) => self.replica_for(slot, read_from, true)?,
                None => self.primary_for(slot)?,
            });
        }
        let sends = split.parts.iter().zip(&targets).map(|((_, cmd), node)| {
            let mut part = Request::new(cmd.clone());
            if let Some(deadline) = request.deadline() {
                part = part.with_deadline(deadline);
            }
            async move { self.send_to(node, &part, false, deadline).await }
        });
        let replies = futures_util::future::join_all(sends).await;
        let value = split::merge(&split.merge, replies, !request.info().is_readonly())?;
        let served_by = if to_replica.is_some() {
            ServedBy::Replica(None)
        } else {
            ServedBy::Primary(None)
        };
        Ok(Response::new(value, served_by))
    }

    fn map(&self) -> Arc<SlotMap> {
        match self.map.read() {
            Ok(map) => Arc::clone(&map),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn swap_map(&self, map: Arc<SlotMap>) {
        match self.map.write() {
            Ok(mut current) => *current = map,
            Err(poisoned) => *poisoned.into_inner() = map,
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The primary serving `slot`; any primary for keyless (or unknown-key) commands.
    fn primary_for(&self, slot: KeySlot) -> Result<NodeAddr, Error> {
        let map = self.map();
        match slot {
            KeySlot::Single(slot) => match map.shard_of(slot) {
                Some(shard) => Ok(shard.primary.clone()),
                None => {
                    self.request_refresh(Trigger::Uncovered);
                    Err(Error::new(
                        ErrorKind::ClusterDown,
                        Sent::No,
                        format!("slot {slot} is not served by any known node"),
                    ))
                }
            },
            _ => {
                let shards = map.shards();
                if shards.is_empty() {
                    self.request_refresh(Trigger::Uncovered);
                    return Err(Error::new(
                        ErrorKind::ClusterDown,
                        Sent::No,
                        "no known primary",
                    ));
                }
                let i = self.next.fetch_add(1, Ordering::Relaxed) % shards.len();
                Ok(shards[i].primary.clone())
            }
        }
    }

    /// A replica of the shard serving `slot`.
    /// `advance` moves the round robin on (a call does; a peek from the
    /// topology view does not).
    fn replica_for(
        &self,
        slot: KeySlot,
        read_from: ReadFrom,
        advance: bool,
    ) -> Result<NodeAddr, Error> {
        let primary = self.primary_for(slot)?;
        let map = self.map();
        let replicas = map
            .shards()
            .iter()
            .find(|shard| shard.primary == primary)
            .map(|shard| shard.replicas.as_slice())
            .unwrap_or_default();
        let pick = match read_from {
            ReadFrom::AnyHealthy if !replicas.is_empty() => {
                let n = if advance {
                    self.next.fetch_add(1, Ordering::Relaxed)
                } else {
                    self.next.load(Ordering::Relaxed)
                };
                replicas.get(n % replicas.len())
            }
            _ => replicas.first(),
        };
        pick.cloned().ok_or_else(|| {
            // A replica may have been loading at the last refresh.
            self.request_refresh(Trigger::NoReplica);
            Error::new(
                ErrorKind::NoReplicaAvailable,
                Sent::No,
                format!("no healthy replica of {primary}"),
            )
        })
    }

    /// The connection to `addr`, created (connecting in the background) on first use.
    fn connection(&self, addr: &NodeAddr) -> Result<Arc<NodeConnection>, Error> {
        if let Ok(nodes) = self.nodes.read()
            && let Some(conn) = nodes.get(addr)
        {
            return Ok(Arc::clone(conn));
        }
        let readonly = self.map().is_replica(addr);
        let conn = self.new_connection(addr, readonly)?;
        Ok(match self.nodes.write() {
            Ok(mut nodes) => Arc::clone(nodes.entry(addr.clone()).or_insert(conn)),
            Err(_) => conn,
        })
    }

    fn new_connection(
        &self,
        addr: &NodeAddr,
        readonly: bool,
    ) -> Result<Arc<NodeConnection>, Error> {
        let dial = match &self.address_map {
            Some(map) => map.dial(addr),
            None => addr.clone(),
        };
        let settings = ConnectSettings {
            readonly,
            ..self.settings.clone()
        };
        let client = self.factory.client(&dial)?;
        Ok(NodeConnection::lazy(addr.clone(), client, settings))
    }

    fn request_refresh(&self, trigger: Trigger) {
        if let Ok(mut pending) = self.signal.trigger.lock() {
            pending.get_or_insert(trigger);
        }
        self.signal.notify.notify_one();
    }

    /// Reads the slot map and the cluster's state from one node.
    async fn read_topology(&self, node: &NodeAddr) -> Result<(SlotMap, ClusterHealth), Error> {
        let conn = self.connection(node)?;
        let deadline = Instant::now() + self.response_timeout;
        let host = node.host();
        let shards = conn
            .send(
                &Request::new(redis::cmd("CLUSTER").arg("SHARDS").clone()),
                false,
                deadline,
            )
            .await;
        let map = match shards {
            Ok(reply) => SlotMap::from_shards(&reply, host),
            Err(err) if err.message().contains("cluster support disabled") => {
                return Err(Error::config(format!(
                    "{node} is not a cluster node: {err}"
                )));
            }
            Err(err) if matches!(err.kind(), ErrorKind::Server { .. }) => {
                // Before 7.0: no CLUSTER SHARDS.
                let slots = conn
                    .send(
                        &Request::new(redis::cmd("CLUSTER").arg("SLOTS").clone()),
                        false,
                        deadline,
                    )
                    .await?;
                SlotMap::from_slots(&slots, host)
            }
            Err(err) => return Err(err),
        };
        let map = map.ok_or_else(|| {
            Error::new(
                ErrorKind::Protocol,
                Sent::Yes,
                format!("unexpected CLUSTER SHARDS reply from {node}"),
            )
        })?;
        let info = conn
            .send(
                &Request::new(redis::cmd("CLUSTER").arg("INFO").clone()),
                false,
                deadline,
            )
            .await?;
        let info = match info {
            Value::BulkString(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Value::VerbatimString { text, .. } | Value::SimpleString(text) => text,
            _ => String::new(),
        };
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let mut failing: Vec<NodeAddr> = map
            .shards()
            .iter()
            .flat_map(|s| s.failed.iter().cloned())
            .collect();
        failing.sort();
        failing.dedup();
        let health = ClusterHealth {
            state_ok: field("cluster_state") == Some("ok"),
            slots_assigned: field("cluster_slots_assigned")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| map.covered()),
            slots_ok: field("cluster_slots_ok")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| map.served()),
            failing_nodes: failing,
            migrating_slots: Vec::new(),
        };
        Ok((map, health))
    }

    /// One refresh: asks the known primaries, then the other nodes, then the seeds.
    async fn refresh(&self, trigger: Trigger) {
        let map = self.map();
        let mut candidates: Vec<NodeAddr> =
            map.shards().iter().map(|s| s.primary.clone()).collect();
        for node in map.nodes().chain(&self.seeds) {
            if !candidates.contains(node) {
                candidates.push(node.clone());
            }
        }
        for node in &candidates {
            match self.read_topology(node).await {
                Ok((fresh, health)) => {
                    self.install(fresh, health, trigger.label());
                    return;
                }
                Err(err) => tracing::debug!(node = %node, error = %err, "slot map refresh failed"),
            }
        }
        tracing::warn!(
            trigger = trigger.label(),
            "no node answered a slot map refresh"
        );
    }

    /// Swaps in `fresh` if it differs, reconciles connections and publishes health.
    fn install(&self, fresh: SlotMap, mut health: ClusterHealth, trigger: &'static str) {
        metrics::counter!("redis_topology_refreshes_total", "trigger" => trigger).increment(1);
        let current = self.map();
        if fresh.hash() != current.hash() {
            let fresh = Arc::new(fresh);
            self.reconcile_connections(&fresh);
            self.swap_map(Arc::clone(&fresh));
            if let Ok(mut asked) = self.asked.lock() {
                asked.clear();
            }
            tracing::debug!(trigger, shards = fresh.shards().len(), "slot map changed");
        }
        if let Ok(asked) = self.asked.lock() {
            health.migrating_slots = asked.iter().copied().collect();
        }
        metrics::gauge!("redis_cluster_slots_assigned").set(health.slots_assigned as f64);
        metrics::gauge!("redis_cluster_slots_ok").set(health.slots_ok as f64);
        if let Ok(mut current) = self.health.write() {
            *current = health;
        }
    }

    /// Connections for new nodes; none for removed ones; a new one when a
    /// node's role changed (replicas need `READONLY`).
    fn reconcile_connections(&self, fresh: &SlotMap) {
        let Ok(mut nodes) = self.nodes.write() else {
            return;
        };
        nodes.retain(|addr, _| fresh.nodes().any(|node| node == addr) || self.seeds.contains(addr));
        for addr in fresh.nodes() {
            let readonly = fresh.is_replica(addr);
            let stale = nodes
                .get(addr)
                .is_some_and(|conn| conn.is_readonly() != readonly);
            if (stale || !nodes.contains_key(addr))
                && let Ok(conn) = self.new_connection(addr, readonly)
            {
                nodes.insert(addr.clone(), conn);
            }
        }
    }

    pub(crate) fn health(&self) -> ClusterHealth {
        match self.health.read() {
            Ok(health) => health.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn node_for(&self, request: &Request) -> Option<NodeAddr> {
        match request.route() {
            Route::Node(addr) | Route::Asking(addr) => Some(addr.clone()),
            Route::Replica(read_from) => self.replica_for(request.slot(), *read_from, false).ok(),
            _ => match request.slot() {
                KeySlot::Single(slot) => self.map().shard_of(slot).map(|s| s.primary.clone()),
                _ => None,
            },
        }
    }

    pub(crate) fn replicas_of(&self, node: &NodeAddr) -> Vec<NodeAddr> {
        self.map()
            .shards()
            .iter()
            .find(|shard| &shard.primary == node)
            .map(|shard| shard.replicas.clone())
            .unwrap_or_default()
    }

    pub(crate) fn node_health(&self, node: &NodeAddr) -> NodeHealth {
        let map = self.map();
        if map.shards().iter().any(|s| s.failed.contains(node)) {
            return NodeHealth::Failing;
        }
        match self
            .nodes
            .read()
            .ok()
            .and_then(|nodes| nodes.get(node).cloned())
        {
            Some(conn) if conn.is_connected() => NodeHealth::Healthy,
            Some(_) => NodeHealth::Failing,
            None => NodeHealth::Unknown,
        }
    }

    pub(crate) fn primaries(&self) -> Vec<NodeAddr> {
        self.map()
            .shards()
            .iter()
            .map(|s| s.primary.clone())
            .collect()
    }
}

/// Refreshes on triggers (at most once per minimum interval) and periodically.
async fn refresh_loop(shared: Weak<Shared>, signal: Arc<RefreshSignal>) {
    let mut last = Instant::now();
    loop {
        let (interval, min_interval) = {
            let Some(strong) = shared.upgrade() else {
                return;
            };
            let Backend::Cluster(cluster) = &strong.backend else {
                return;
            };
            (cluster.refresh_interval, cluster.refresh_min_interval)
        };
        let trigger = tokio::select! {
            () = signal.notify.notified() => None,
            () = tokio::time::sleep(interval) => Some(Trigger::Periodic),
        };
        // Rate limit: triggers that arrive meanwhile are folded into this refresh.
        let since = last.elapsed();
        if since < min_interval {
            tokio::time::sleep(min_interval - since).await;
        }
        let trigger = trigger
            .or_else(|| {
                signal
                    .trigger
                    .lock()
                    .ok()
                    .and_then(|mut pending| pending.take())
            })
            .unwrap_or(Trigger::Periodic);
        if let Ok(mut pending) = signal.trigger.lock() {
            pending.take();
        }
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let Backend::Cluster(cluster) = &strong.backend else {
            return;
        };
        cluster.refresh(trigger).await;
        last = Instant::now();
    }
}
