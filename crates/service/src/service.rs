//! [`RedisService`]: the `tower::Service` at the bottom of every stack.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use redis_resilience_core::{Error, Request, Response, Sent};
use tokio::time::Instant;

use crate::cluster::{Cluster, ClusterHealth};
use crate::config::{AddressMap, Config, Credentials, Tls};
use crate::connection::{ConnectSettings, NodeConnection};
use crate::endpoint::{self, ClientFactory};
use crate::sentinel::Sentinel;
use crate::standalone::Standalone;
use crate::topology::RedisTopology;

#[derive(Debug)]
pub(crate) enum Backend {
    Standalone(Standalone),
    Sentinel(Box<Sentinel>),
    Cluster(Box<Cluster>),
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) backend: Backend,
    pub(crate) config: Config,
}

/// A `tower::Service<Request>` that talks to standalone or Sentinel-managed Redis.
///
/// Clones share everything (connections, the current master, background
/// tasks); the background tasks end when the last clone is dropped.
/// `poll_ready` is always ready and never fails: every failure is the
/// request's own [`Error`], with [`Sent`] telling whether the command may have
/// run.
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> Result<(), redis_resilience_core::Error> {
/// use std::time::Duration;
/// use redis_resilience_core::Request;
/// use redis_resilience_service::RedisService;
/// use tower::ServiceExt;
///
/// let redis = RedisService::builder()
///     .connect_timeout(Duration::from_millis(500))
///     .standalone("redis://127.0.0.1:6379")
///     .await?;
/// let response = redis
///     .oneshot(Request::new(redis::cmd("PING").clone()))
///     .await?;
/// assert_eq!(response.value, redis::Value::SimpleString("PONG".into()));
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// Building fails with `Config` for bad input (malformed URL, empty sentinel
/// list, absurd timeouts), `Connect` when nothing answers within the connect
/// timeout, and `Auth` for wrong credentials.
#[derive(Debug, Clone)]
pub struct RedisService {
    shared: Arc<Shared>,
}

impl RedisService {
    /// Connects to a standalone server with default settings:
    /// `redis://[user:pass@]host:port[/db]`, `rediss://…` or `host:port`.
    ///
    /// # Errors
    ///
    /// See [`RedisService`].
    pub async fn standalone(addr: &str) -> Result<Self, Error> {
        Self::builder().standalone(addr).await
    }

    /// Connects to the master that the sentinels name `master_name`, with default settings.
    ///
    /// # Errors
    ///
    /// See [`RedisService`].
    pub async fn sentinel<I, S>(sentinels: I, master_name: &str) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::builder().sentinel(sentinels, master_name).await
    }

    /// Connects to a Redis Cluster through any of `seeds`, with default settings.
    ///
    /// # Errors
    ///
    /// See [`RedisService`]; also `Config` when a seed is not a cluster node.
    pub async fn cluster<I, S>(seeds: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::builder().cluster(seeds).await
    }

    /// The cluster's state at the last slot-map refresh; `None` outside a cluster.
    #[must_use]
    pub fn cluster_health(&self) -> Option<ClusterHealth> {
        match &self.shared.backend {
            Backend::Cluster(cluster) => Some(cluster.health()),
            _ => None,
        }
    }

    /// A builder for timeouts, credentials and the rest of [`Config`].
    pub fn builder() -> RedisServiceBuilder {
        RedisServiceBuilder::default()
    }

    /// The read-only view of the nodes, for layers that keep state per node.
    #[must_use]
    pub fn topology(&self) -> RedisTopology {
        RedisTopology::new(Arc::clone(&self.shared))
    }

    fn attempt_deadline(&self, request: &Request) -> Instant {
        let own = Instant::now() + self.shared.config.response_timeout;
        match request.deadline() {
            Some(deadline) => own.min(Instant::from_std(deadline)),
            None => own,
        }
    }
}

impl tower_service::Service<Request> for RedisService {
    type Response = Response;
    type Error = Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // Never `Err`: tower callers drop a service whose readiness fails.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> ResponseFuture {
        let deadline = self.attempt_deadline(&request);
        let shared = Arc::clone(&self.shared);
        ResponseFuture {
            inner: Box::pin(async move {
                if deadline <= Instant::now() {
                    return Err(Error::new(
                        redis_resilience_core::ErrorKind::Timeout,
                        Sent::No,
                        "the request's deadline passed before it was sent",
                    ));
                }
                match &shared.backend {
                    Backend::Standalone(backend) => backend.call(request, deadline).await,
                    Backend::Sentinel(backend) => backend.call(request, deadline).await,
                    Backend::Cluster(backend) => backend.call(request, deadline).await,
                }
            }),
        }
    }
}

/// The future of `RedisService::call` (`tower::Service::call`).
///
/// One allocation per request: the work is an `async` block over redis-rs,
/// whose own connection futures are boxed already.
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Result<Response, Error>> + Send + 'static>>,
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

/// Builds a [`RedisService`].
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until a backend is chosen"]
pub struct RedisServiceBuilder {
    config: Config,
}

impl RedisServiceBuilder {
    /// Replaces the whole configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// How long a connection attempt may take (default 1 s).
    pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// How long one request waits for its answer (default 1 s), cut short by its deadline.
    pub fn response_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.config.response_timeout = timeout;
        self
    }

    /// Reconnect backoff: full jitter up to `min(cap, base · 2ⁿ)` (default 20 ms, 2 s).
    pub fn reconnect_backoff(
        mut self,
        base: std::time::Duration,
        cap: std::time::Duration,
    ) -> Self {
        self.config.reconnect_base = base;
        self.config.reconnect_cap = cap;
        self
    }

    /// Credentials for the data nodes (override those in a URL).
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.config.credentials = credentials;
        self
    }

    /// Credentials for the sentinels, separate from the data nodes'.
    pub fn sentinel_credentials(mut self, credentials: Credentials) -> Self {
        self.config.sentinel_credentials = credentials;
        self
    }

    /// The database number (default 0, or the one in a URL).
    pub fn database(mut self, database: i64) -> Self {
        self.config.database = database;
        self
    }

    /// TLS to every node (needs the `tls` feature; a `rediss://` URL turns it on too).
    pub fn tls(mut self, tls: Tls) -> Self {
        self.config.tls = Some(tls);
        self
    }

    /// Cluster: how often the slot map is refreshed at least (default 15 s),
    /// and at most (default once per second).
    pub fn cluster_refresh(
        mut self,
        every: std::time::Duration,
        at_most_every: std::time::Duration,
    ) -> Self {
        self.config.cluster_refresh_interval = every;
        self.config.cluster_refresh_min_interval = at_most_every;
        self
    }

    /// Cluster: maps announced node addresses to the addresses to dial (NAT).
    pub fn address_map(mut self, map: AddressMap) -> Self {
        self.config.address_map = Some(map);
        self
    }

    /// Connects to a Redis Cluster through any of `seeds`
    /// (`host:port` or `redis://` URLs; credentials and TLS as for [`standalone`](Self::standalone)).
    ///
    /// # Errors
    ///
    /// See [`RedisService`]; also `Config` for an empty seed list or a seed
    /// that is not a cluster node.
    pub async fn cluster<I, S>(self, seeds: I) -> Result<RedisService, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut config = self.config;
        config.validate()?;
        let endpoints = seeds
            .into_iter()
            .map(|s| endpoint::parse(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(first) = endpoints.first() else {
            return Err(Error::config("the cluster seed list is empty"));
        };
        if !config.has_credentials() {
            config.credentials = first.credentials.clone();
        }
        if endpoints.iter().any(|e| e.tls) && config.tls.is_none() {
            config.tls = Some(Tls::new());
        }
        if endpoints
            .iter()
            .any(|e| e.database.is_some_and(|db| db != 0))
            || config.database != 0
        {
            return Err(Error::config("Redis Cluster has only database 0"));
        }
        config.validate()?;
        let cluster = Cluster::start(endpoints, &config, data_factory(&config)).await?;
        let shared = Arc::new(Shared {
            backend: Backend::Cluster(Box::new(cluster)),
            config,
        });
        if let Backend::Cluster(cluster) = &shared.backend {
            cluster.spawn_refresher(&Arc::downgrade(&shared));
        }
        Ok(RedisService { shared })
    }

    /// Connects to a standalone server.
    ///
    /// # Errors
    ///
    /// See [`RedisService`].
    pub async fn standalone(self, addr: &str) -> Result<RedisService, Error> {
        let mut config = self.config;
        config.validate()?;
        let endpoint = endpoint::parse(addr)?;
        if !config.has_credentials() {
            config.credentials = endpoint.credentials.clone();
        }
        if config.database == 0 {
            config.database = endpoint.database.unwrap_or(0);
        }
        if endpoint.tls && config.tls.is_none() {
            config.tls = Some(Tls::new());
        }
        config.validate()?;
        let factory = data_factory(&config);
        let client = factory.client(&endpoint.addr)?;
        let node =
            NodeConnection::connect(endpoint.addr, client, connect_settings(&config)).await?;
        Ok(RedisService {
            shared: Arc::new(Shared {
                backend: Backend::Standalone(Standalone { node }),
                config,
            }),
        })
    }

    /// Connects to the master the sentinels name `master_name`.
    ///
    /// # Errors
    ///
    /// See [`RedisService`]; also `Config` when no reachable sentinel knows
    /// `master_name`, and `Connect` when no sentinel is reachable.
    pub async fn sentinel<I, S>(
        self,
        sentinels: I,
        master_name: &str,
    ) -> Result<RedisService, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let config = self.config;
        config.validate()?;
        let endpoints = sentinels
            .into_iter()
            .map(|s| endpoint::parse(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(Error::config("the sentinel list is empty"));
        }
        if master_name.trim().is_empty() {
            return Err(Error::config("the master name is empty"));
        }
        let sentinel = Sentinel::start(endpoints, master_name, &config).await?;
        let shared = Arc::new(Shared {
            backend: Backend::Sentinel(Box::new(sentinel)),
            config,
        });
        if let Backend::Sentinel(sentinel) = &shared.backend {
            sentinel.spawn_watchers(&Arc::downgrade(&shared));
        }
        Ok(RedisService { shared })
    }
}

pub(crate) fn connect_settings(config: &Config) -> ConnectSettings {
    ConnectSettings {
        connect_timeout: config.connect_timeout,
        readonly: false,
        reconnect_base: config.reconnect_base,
        reconnect_cap: config.reconnect_cap,
    }
}

pub(crate) fn data_factory(config: &Config) -> ClientFactory {
    ClientFactory {
        credentials: config.credentials.clone(),
        database: config.database,
        tls: config.tls.clone(),
    }
}
