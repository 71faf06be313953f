//! The Sentinel backend: finds the master through the sentinels and follows a
//! failover at once.
//!
//! - Discovery asks the sentinels (`SENTINEL get-master-addr-by-name`) and
//!   checks `ROLE` on a newly named master before any request goes to it.
//! - Each sentinel's `+switch-master` channel switches the master as soon as
//!   it is announced; polling runs too (every second, every 100 ms while a
//!   failover is suspected), since the announcement can lag polling by a
//!   second (DESIGN §9).
//! - A failover is suspected on connection errors, timeouts and `READONLY`.
//! - Replica reads go to replicas the sentinels list as healthy (not
//!   `s_down`/`o_down`/`disconnected`, `master-link-status` ok), most
//!   up to date first.
//!
//! Requests never wait on discovery: they read the current master from a
//! `watch` channel, and fail at once with `Connect` (`Sent::No`) while no
//! verified master is known.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::Value;
use redis::aio::MultiplexedConnection;
use redis_resilience_core::{
    Error, ErrorKind, NodeAddr, NodeHealth, ReadFrom, Request, Response, Route, Sent, ServedBy,
};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use crate::config::Config;
use crate::connection::{
    ConnectSettings, NodeConnection, connect_error, connect_once, full_jitter,
};
use crate::endpoint::{ClientFactory, Endpoint};
use crate::service::{Backend, Shared, connect_settings, data_factory};

/// One sentinel.
#[derive(Debug)]
struct SentinelNode {
    addr: NodeAddr,
    client: redis::Client,
}

/// A replica the sentinels call healthy.
#[derive(Debug, Clone)]
struct Replica {
    conn: Arc<NodeConnection>,
    offset: i64,
}

/// Wake-ups for the discovery task, kept apart from the backend so the task
/// does not keep the service alive.
#[derive(Debug)]
struct Signals {
    suspect: Notify,
    announced_tx: mpsc::Sender<NodeAddr>,
    announced_rx: std::sync::Mutex<Option<mpsc::Receiver<NodeAddr>>>,
}

#[derive(Debug)]
pub(crate) struct Sentinel {
    master_name: String,
    sentinels: Vec<SentinelNode>,
    data: ClientFactory,
    settings: ConnectSettings,
    response_timeout: Duration,
    poll_interval: Duration,
    fast_poll_interval: Duration,
    fast_poll_for: Duration,
    master: watch::Sender<Option<Arc<NodeConnection>>>,
    replicas: RwLock<Arc<[Replica]>>,
    generation: AtomicU64,
    next_replica: AtomicUsize,
    signals: Arc<Signals>,
    /// Connections to the sentinels, used only by discovery.
    sentinel_cons: tokio::sync::Mutex<Vec<Option<MultiplexedConnection>>>,
}

impl Sentinel {
    pub(crate) async fn start(
        endpoints: Vec<Endpoint>,
        master_name: &str,
        config: &Config,
    ) -> Result<Self, Error> {
        let factory = ClientFactory {
            credentials: config.sentinel_credentials.clone(),
            database: 0,
            tls: match &config.tls {
                Some(tls) => Some(tls.clone()),
                None if endpoints.iter().any(|e| e.tls) => Some(crate::config::Tls::new()),
                None => None,
            },
        };
        let sentinels = endpoints
            .iter()
            .map(|endpoint| {
                let mut factory = factory.clone();
                if config.sentinel_credentials == Default::default() {
                    factory.credentials = endpoint.credentials.clone();
                }
                Ok(SentinelNode {
                    addr: endpoint.addr.clone(),
                    client: factory.client(&endpoint.addr)?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let (announced_tx, announced_rx) = mpsc::channel(16);
        let count = sentinels.len();
        let sentinel = Self {
            master_name: master_name.to_owned(),
            sentinels,
            data: data_factory(config),
            settings: connect_settings(config),
            response_timeout: config.response_timeout,
            poll_interval: config.sentinel_poll_interval,
            fast_poll_interval: config.sentinel_fast_poll_interval,
            fast_poll_for: config.sentinel_fast_poll_for,
            master: watch::Sender::new(None),
            replicas: RwLock::new(Arc::from(Vec::new())),
            generation: AtomicU64::new(0),
            next_replica: AtomicUsize::new(0),
            signals: Arc::new(Signals {
                suspect: Notify::new(),
                announced_tx,
                announced_rx: std::sync::Mutex::new(Some(announced_rx)),
            }),
            sentinel_cons: tokio::sync::Mutex::new(vec![None; count]),
        };
        let addr = sentinel.ask_master_addr().await?;
        let master = sentinel.connect_verified_master(addr).await?;
        sentinel.install_master(master);
        sentinel.refresh_replicas().await;
        Ok(sentinel)
    }

    /// Starts discovery and the `+switch-master` watchers; they end once the service is dropped.
    pub(crate) fn spawn_watchers(&self, shared: &Weak<Shared>) {
        let receiver = self
            .signals
            .announced_rx
            .lock()
            .ok()
            .and_then(|mut slot| slot.take());
        if let Some(receiver) = receiver {
            tokio::spawn(discovery_loop(
                Weak::clone(shared),
                Arc::clone(&self.signals),
                receiver,
            ));
        }
        for node in &self.sentinels {
            tokio::spawn(switch_master_watcher(
                node.client.clone(),
                node.addr.clone(),
                self.master_name.clone(),
                self.signals.announced_tx.clone(),
                self.settings.clone(),
            ));
        }
    }

    pub(crate) async fn call(
        &self,
        request: Request,
        deadline: Instant,
    ) -> Result<Response, Error> {
        match request.route() {
            Route::Auto => self.call_master(&request, false, deadline).await,
            Route::Node(addr) | Route::Asking(addr) => {
                let asking = matches!(request.route(), Route::Asking(_));
                if self.master_addr().as_ref() == Some(addr) {
                    return self.call_master(&request, asking, deadline).await;
                }
                let replica = self
                    .replicas_snapshot()
                    .iter()
                    .find(|r| r.conn.addr() == addr)
                    .cloned();
                match replica {
                    Some(replica) if request.info().is_readonly() => {
                        self.call_replica(&replica.conn, &request, deadline).await
                    }
                    Some(_) => Err(write_to_replica()),
                    None => Err(Error::config(format!(
                        "no node {addr} behind the sentinels' master {:?}",
                        self.master_name
                    ))),
                }
            }
            Route::Replica(read_from) => {
                if !request.info().is_readonly() {
                    return Err(write_to_replica());
                }
                let Some(first) = self.pick_replica(*read_from, true) else {
                    return Err(Error::new(
                        ErrorKind::NoReplicaAvailable,
                        Sent::No,
                        format!("no healthy replica of {:?}", self.master_name),
                    ));
                };
                // A replica that could not serve the read is not the last word:
                // during a failover the sentinels reconfigure replicas and
                // kill their client connections (`CLIENT KILL TYPE normal`),
                // and a resyncing replica answers LOADING. Reads are safe to
                // send again: try the others once each, then the first again
                // (its connection has been re-established meanwhile).
                let others: Vec<Arc<NodeConnection>> = self
                    .replicas_snapshot()
                    .iter()
                    .filter(|r| r.conn.addr() != first.addr())
                    .map(|r| Arc::clone(&r.conn))
                    .collect();
                let mut result = self.call_replica(&first, &request, deadline).await;
                for next in others.iter().chain(std::iter::once(&first)) {
                    match &result {
                        Err(err) if replica_may_retry(err) => {
                            result = self.call_replica(next, &request, deadline).await;
                        }
                        _ => break,
                    }
                }
                result
            }
            _ => Err(Error::config("unsupported route")),
        }
    }

    async fn call_master(
        &self,
        request: &Request,
        asking: bool,
        deadline: Instant,
    ) -> Result<Response, Error> {
        let Some(master) = self.master.borrow().clone() else {
            self.suspect();
            return Err(Error::connect(format!(
                "no verified master for {:?} right now (failover in progress)",
                self.master_name
            )));
        };
        match master.send(request, asking, deadline).await {
            Ok(value) => Ok(Response::new(
                value,
                ServedBy::Primary(Some(master.addr().clone())),
            )),
            Err(err) => {
                if suspicious(&err) {
                    self.suspect();
                }
                Err(err)
            }
        }
    }

    async fn call_replica(
        &self,
        replica: &Arc<NodeConnection>,
        request: &Request,
        deadline: Instant,
    ) -> Result<Response, Error> {
        match replica.send(request, false, deadline).await {
            Ok(value) => Ok(Response::new(
                value,
                ServedBy::Replica(Some(replica.addr().clone())),
            )),
            Err(err) => {
                if suspicious(&err) {
                    self.suspect();
                }
                Err(err)
            }
        }
    }

    fn suspect(&self) {
        self.signals.suspect.notify_one();
    }

    fn replicas_snapshot(&self) -> Arc<[Replica]> {
        match self.replicas.read() {
            Ok(replicas) => Arc::clone(&replicas),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// A connected healthy replica if there is one, else any healthy one.
    /// A healthy replica, preferring connected ones. `advance` moves the
    /// round robin on (a call does; a peek from the topology view does not,
    /// so a per-node breaker keys on the replica the call will use).
    fn pick_replica(&self, read_from: ReadFrom, advance: bool) -> Option<Arc<NodeConnection>> {
        let replicas = self.replicas_snapshot();
        let any_connected = replicas.iter().any(|r| r.conn.is_connected());
        let mut pool = replicas
            .iter()
            .filter(|r| !any_connected || r.conn.is_connected());
        let pick = match read_from {
            ReadFrom::AnyHealthy => {
                let len = pool.clone().count();
                if len == 0 {
                    return None;
                }
                let n = if advance {
                    self.next_replica.fetch_add(1, Ordering::Relaxed)
                } else {
                    self.next_replica.load(Ordering::Relaxed)
                };
                pool.nth(n % len)
            }
            // Sorted by offset when refreshed: the first is the least behind.
            _ => pool.next(),
        };
        pick.map(|r| Arc::clone(&r.conn))
    }

    pub(crate) fn master_addr(&self) -> Option<NodeAddr> {
        self.master.borrow().as_ref().map(|m| m.addr().clone())
    }

    pub(crate) fn replica_addrs(&self) -> Vec<NodeAddr> {
        self.replicas_snapshot()
            .iter()
            .map(|r| r.conn.addr().clone())
            .collect()
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn node_for(&self, request: &Request) -> Option<NodeAddr> {
        match request.route() {
            Route::Node(addr) | Route::Asking(addr) => Some(addr.clone()),
            Route::Replica(read_from) => self
                .pick_replica(*read_from, false)
                .map(|c| c.addr().clone()),
            _ => self.master_addr(),
        }
    }

    pub(crate) fn health(&self, node: &NodeAddr) -> NodeHealth {
        let master = self.master.borrow().clone();
        if let Some(master) = master.filter(|m| m.addr() == node) {
            return health_of(&master);
        }
        self.replicas_snapshot()
            .iter()
            .find(|r| r.conn.addr() == node)
            .map_or(NodeHealth::Unknown, |r| health_of(&r.conn))
    }

    fn install_master(&self, master: Arc<NodeConnection>) {
        tracing::info!(master_name = %self.master_name, master = %master.addr(), "using master");
        self.master.send_replace(Some(master));
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// One discovery round: the announced or polled master, switched to once verified.
    async fn discover(&self, announced: Option<NodeAddr>) {
        let named = match announced {
            Some(addr) => addr,
            None => match self.ask_master_addr().await {
                Ok(addr) => addr,
                Err(err) => {
                    tracing::warn!(error = %err, "sentinel discovery failed");
                    return;
                }
            },
        };
        if self.master_addr().as_ref() == Some(&named) {
            return;
        }
        match self.connect_verified_master(named.clone()).await {
            Ok(master) => {
                self.install_master(master);
                self.refresh_replicas().await;
            }
            Err(err) => tracing::debug!(candidate = %named, error = %err, "not switching yet"),
        }
    }

    /// Asks the sentinels, in turn, for the master's address.
    async fn ask_master_addr(&self) -> Result<NodeAddr, Error> {
        let mut cons = self.sentinel_cons.lock().await;
        let mut unknown_name = 0;
        let mut failures = Vec::new();
        for (i, node) in self.sentinels.iter().enumerate() {
            let mut cmd = redis::cmd("SENTINEL");
            cmd.arg("get-master-addr-by-name").arg(&self.master_name);
            match self.sentinel_query(&mut cons[i], node, &cmd).await {
                Ok(Value::Nil) => unknown_name += 1,
                Ok(value) => match parse_addr_pair(&value) {
                    Some(addr) => return Ok(addr),
                    None => failures.push(format!("{}: unexpected reply {value:?}", node.addr)),
                },
                Err(err) => failures.push(format!("{}: {err}", node.addr)),
            }
        }
        if unknown_name > 0 {
            return Err(Error::config(format!(
                "no sentinel knows a master named {:?} ({unknown_name} answered, {} failed)",
                self.master_name,
                failures.len()
            )));
        }
        Err(Error::connect(format!(
            "no sentinel reachable: {}",
            failures.join("; ")
        )))
    }

    async fn sentinel_query(
        &self,
        slot: &mut Option<MultiplexedConnection>,
        node: &SentinelNode,
        cmd: &redis::Cmd,
    ) -> Result<Value, Error> {
        let mut con = match slot.take() {
            Some(con) => con,
            None => {
                connect_once(
                    &node.addr,
                    &node.client,
                    self.settings.connect_timeout,
                    false,
                )
                .await?
            }
        };
        let reply =
            tokio::time::timeout(self.response_timeout, cmd.query_async::<Value>(&mut con)).await;
        match reply {
            Ok(Ok(value)) => {
                *slot = Some(con);
                Ok(value)
            }
            // Drop the connection: the next query reconnects.
            Ok(Err(err)) => Err(Error::from_redis(err, Sent::Maybe)),
            Err(_) => Err(Error::timeout(Sent::Maybe)),
        }
    }

    /// Connects to `addr` and checks that it calls itself a master.
    async fn connect_verified_master(&self, addr: NodeAddr) -> Result<Arc<NodeConnection>, Error> {
        let client = self.data.client(&addr)?;
        let node = NodeConnection::connect(addr, client, self.settings.clone()).await?;
        let deadline = Instant::now() + self.response_timeout;
        let role = node
            .send(&Request::new(redis::cmd("ROLE")), false, deadline)
            .await?;
        match role_name(&role) {
            Some("master") => Ok(node),
            other => Err(Error::connect(format!(
                "{} is named master by the sentinels but reports role {}",
                node.addr(),
                other.unwrap_or("unknown")
            ))),
        }
    }

    /// Replaces the replica list with the healthy replicas the sentinels report.
    async fn refresh_replicas(&self) {
        let mut cons = self.sentinel_cons.lock().await;
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("replicas").arg(&self.master_name);
        let mut reply = None;
        for (i, node) in self.sentinels.iter().enumerate() {
            if let Ok(value) = self.sentinel_query(&mut cons[i], node, &cmd).await {
                reply = Some(value);
                break;
            }
        }
        drop(cons);
        let Some(Value::Array(entries)) = reply else {
            return;
        };
        let old = self.replicas_snapshot();
        let master = self.master_addr();
        let mut fresh: Vec<Replica> = Vec::new();
        for entry in &entries {
            let Some(info) = ReplicaInfo::parse(entry) else {
                continue;
            };
            if !info.healthy() || Some(&info.addr) == master.as_ref() {
                continue;
            }
            let conn = match old.iter().find(|r| r.conn.addr() == &info.addr) {
                Some(existing) => Arc::clone(&existing.conn),
                None => match self.data.client(&info.addr) {
                    Ok(client) => {
                        NodeConnection::lazy(info.addr.clone(), client, self.settings.clone())
                    }
                    Err(_) => continue,
                },
            };
            fresh.push(Replica {
                conn,
                offset: info.offset,
            });
        }
        if fresh.is_empty() {
            // Right after a failover the replicas are being reconfigured to
            // follow the new master and report their link down for a moment:
            // keep the ones we had (they still serve reads) rather than none.
            fresh = old
                .iter()
                .filter(|r| Some(r.conn.addr()) != master.as_ref())
                .cloned()
                .collect();
        }
        fresh.sort_by_key(|r| std::cmp::Reverse(r.offset));
        if let Ok(mut replicas) = self.replicas.write() {
            *replicas = Arc::from(fresh);
        }
    }
}

fn health_of(node: &NodeConnection) -> NodeHealth {
    if node.is_connected() {
        NodeHealth::Healthy
    } else {
        NodeHealth::Failing
    }
}

/// A replica read failure worth another replica (reads are idempotent;
/// timeouts are not retried, they would double the wait).
fn replica_may_retry(err: &Error) -> bool {
    matches!(
        err.kind(),
        ErrorKind::Connect | ErrorKind::Io | ErrorKind::Loading | ErrorKind::MasterDown
    )
}

fn write_to_replica() -> Error {
    Error::config("only read-only commands can be routed to a replica")
}

/// Errors that hint the master may have changed.
fn suspicious(err: &Error) -> bool {
    matches!(
        err.kind(),
        ErrorKind::Connect
            | ErrorKind::Io
            | ErrorKind::Timeout
            | ErrorKind::ReadOnly
            | ErrorKind::MasterDown
    )
}

/// Discovery: polls slowly, quickly while a failover is suspected, and at once on an announcement.
async fn discovery_loop(
    shared: Weak<Shared>,
    signals: Arc<Signals>,
    mut announced: mpsc::Receiver<NodeAddr>,
) {
    let mut fast_until: Option<Instant> = None;
    loop {
        let (poll, fast_poll, fast_for) = {
            let Some(strong) = shared.upgrade() else {
                return;
            };
            let Backend::Sentinel(sentinel) = &strong.backend else {
                return;
            };
            (
                sentinel.poll_interval,
                sentinel.fast_poll_interval,
                sentinel.fast_poll_for,
            )
        };
        let interval = match fast_until {
            Some(until) if until > Instant::now() => fast_poll,
            _ => poll,
        };
        let candidate = tokio::select! {
            () = signals.suspect.notified() => {
                fast_until = Some(Instant::now() + fast_for);
                None
            }
            addr = announced.recv() => {
                fast_until = Some(Instant::now() + fast_for);
                addr
            }
            () = tokio::time::sleep(interval) => None,
        };
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let Backend::Sentinel(sentinel) = &strong.backend else {
            return;
        };
        sentinel.discover(candidate).await;
        if fast_until.is_none_or(|until| until <= Instant::now()) {
            // Steady state: keep the replica list fresh too.
            sentinel.refresh_replicas().await;
        }
    }
}

/// Subscribes to one sentinel's `+switch-master` and forwards announcements
/// for our master, reconnecting with backoff; ends when discovery has ended.
async fn switch_master_watcher(
    client: redis::Client,
    addr: NodeAddr,
    master_name: String,
    announced: mpsc::Sender<NodeAddr>,
    settings: ConnectSettings,
) {
    let mut attempt = 0u32;
    loop {
        let subscribed = async {
            let mut pubsub =
                tokio::time::timeout(settings.connect_timeout, client.get_async_pubsub())
                    .await
                    .map_err(|_| {
                        Error::connect(format!("subscribing at sentinel {addr} timed out"))
                    })?
                    .map_err(|err| connect_error(&addr, err))?;
            pubsub
                .subscribe("+switch-master")
                .await
                .map_err(|err| connect_error(&addr, err))?;
            Ok::<_, Error>(pubsub)
        };
        let mut pubsub = tokio::select! {
            () = announced.closed() => return,
            result = subscribed => match result {
                Ok(pubsub) => pubsub,
                Err(err) => {
                    tracing::debug!(sentinel = %addr, error = %err, "cannot subscribe to +switch-master");
                    attempt = attempt.saturating_add(1);
                    tokio::select! {
                        () = announced.closed() => return,
                        () = tokio::time::sleep(full_jitter(settings.reconnect_base, settings.reconnect_cap, attempt)) => continue,
                    }
                }
            },
        };
        attempt = 0;
        let mut messages = pubsub.on_message();
        loop {
            let message = tokio::select! {
                () = announced.closed() => return,
                message = messages.next() => message,
            };
            let Some(message) = message else {
                break;
            };
            // `<master name> <old ip> <old port> <new ip> <new port>`
            let payload = String::from_utf8_lossy(message.get_payload_bytes()).into_owned();
            let words: Vec<&str> = payload.split_whitespace().collect();
            if let [name, _, _, ip, port] = words.as_slice()
                && *name == master_name
                && let Ok(port) = port.parse::<u16>()
            {
                tracing::info!(sentinel = %addr, new_master = %format!("{ip}:{port}"), "+switch-master");
                // Full channel: discovery is busy and will poll anyway.
                let _ = announced.try_send(NodeAddr::new(ip, port));
            }
        }
    }
}

/// `["127.0.0.1", "6379"]` → the address.
fn parse_addr_pair(value: &Value) -> Option<NodeAddr> {
    let Value::Array(items) = value else {
        return None;
    };
    let [host, port] = items.as_slice() else {
        return None;
    };
    let port = text(port)?.parse().ok()?;
    Some(NodeAddr::new(&text(host)?, port))
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// The first element of a `ROLE` reply.
fn role_name(value: &Value) -> Option<&'static str> {
    let Value::Array(items) = value else {
        return None;
    };
    match text(items.first()?)?.as_str() {
        "master" => Some("master"),
        "slave" => Some("slave"),
        "sentinel" => Some("sentinel"),
        _ => None,
    }
}

/// What `SENTINEL replicas` says about one replica.
struct ReplicaInfo {
    addr: NodeAddr,
    flags: String,
    link_ok: bool,
    offset: i64,
}

impl ReplicaInfo {
    fn parse(entry: &Value) -> Option<Self> {
        let fields: Vec<(String, String)> = match entry {
            Value::Array(items) => items
                .chunks(2)
                .filter_map(|pair| match pair {
                    [k, v] => Some((text(k)?, text(v)?)),
                    _ => None,
                })
                .collect(),
            Value::Map(items) => items
                .iter()
                .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
                .collect(),
            _ => return None,
        };
        let get = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        Some(Self {
            addr: NodeAddr::new(get("ip")?, get("port")?.parse().ok()?),
            flags: get("flags").unwrap_or("").to_owned(),
            link_ok: get("master-link-status") == Some("ok"),
            offset: get("slave-repl-offset")
                .and_then(|o| o.parse().ok())
                .unwrap_or(0),
        })
    }

    fn healthy(&self) -> bool {
        self.link_ok
            && !self
                .flags
                .split(',')
                .any(|flag| matches!(flag, "s_down" | "o_down" | "disconnected"))
    }
}
