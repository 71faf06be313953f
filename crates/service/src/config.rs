//! Configuration of a [`RedisService`](crate::RedisService): timeouts,
//! reconnect backoff, credentials, Sentinel polling.

use std::time::Duration;

use redis_resilience_core::{Error, NodeAddr};

/// Credentials for AUTH: a password alone (`requirepass`) or an ACL user.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// ACL user name; `None` authenticates as `default`.
    pub username: Option<String>,
    /// The password.
    pub password: Option<String>,
}

impl Credentials {
    /// A password for the `default` user (`requirepass`).
    #[must_use]
    pub fn password(password: impl Into<String>) -> Self {
        Self {
            username: None,
            password: Some(password.into()),
        }
    }

    /// An ACL user and its password.
    #[must_use]
    pub fn user(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: Some(username.into()),
            password: Some(password.into()),
        }
    }

    fn is_empty(&self) -> bool {
        self.username.is_none() && self.password.is_none()
    }
}

impl std::fmt::Debug for Credentials {
    // Never print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Timeouts, backoff and credentials shared by every backend.
///
/// Defaults: connect timeout 1 s, response timeout 1 s per attempt (both cut
/// short by a request's deadline), reconnect backoff with full jitter between
/// 0 and `min(2 s, 20 ms · 2ⁿ)`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// How long a connection attempt (TCP, TLS, AUTH, `SELECT`) may take.
    pub connect_timeout: Duration,
    /// How long one request may wait for its answer.
    pub response_timeout: Duration,
    /// First reconnect backoff ceiling.
    pub reconnect_base: Duration,
    /// Largest reconnect backoff ceiling.
    pub reconnect_cap: Duration,
    /// Credentials for the data nodes (overrides those in a URL).
    pub credentials: Credentials,
    /// Credentials for the sentinels (separate from the data nodes').
    pub sentinel_credentials: Credentials,
    /// Database number for the data nodes.
    pub database: i64,
    /// Sentinel: how often the master address is polled in steady state.
    pub sentinel_poll_interval: Duration,
    /// Sentinel: how often it is polled while a failover is suspected
    /// (after a connection error, a timeout or `READONLY`).
    pub sentinel_fast_poll_interval: Duration,
    /// Sentinel: how long fast polling lasts after a suspicion.
    pub sentinel_fast_poll_for: Duration,
    /// Cluster: the slot map is refreshed at least this often (default 15 s).
    pub cluster_refresh_interval: Duration,
    /// Cluster: and at most this often, however many triggers (default 1 s).
    pub cluster_refresh_min_interval: Duration,
    /// Cluster: maps the address a node announces to the address to dial
    /// (NAT, port forwarding, containers). Identity when unset.
    pub address_map: Option<AddressMap>,
    /// TLS to data nodes and sentinels (needs the `tls` feature); a
    /// `rediss://` URL turns it on with the system's trust store.
    pub tls: Option<Tls>,
}

/// Maps an announced node address to the address to dial.
///
/// # Example
///
/// ```
/// use redis_resilience_core::NodeAddr;
/// use redis_resilience_service::AddressMap;
///
/// // Nodes announce 10.0.0.x:700y; this host reaches them on localhost:1700y.
/// let map = AddressMap::new(|announced: &NodeAddr| {
///     NodeAddr::new("127.0.0.1", announced.port() + 10_000)
/// });
/// assert_eq!(map.dial(&NodeAddr::new("10.0.0.1", 7000)), NodeAddr::new("127.0.0.1", 17000));
/// ```
#[derive(Clone)]
pub struct AddressMap(std::sync::Arc<dyn Fn(&NodeAddr) -> NodeAddr + Send + Sync>);

impl AddressMap {
    /// A mapping function.
    pub fn new(map: impl Fn(&NodeAddr) -> NodeAddr + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(map))
    }

    /// The address to dial for `announced`.
    #[must_use]
    pub fn dial(&self, announced: &NodeAddr) -> NodeAddr {
        (self.0)(announced)
    }
}

impl std::fmt::Debug for AddressMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AddressMap(<fn>)")
    }
}

/// TLS settings: which roots to trust, and a client identity for mutual TLS.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tls {
    /// PEM certificate(s) to trust instead of the system's trust store.
    pub root_cert_pem: Option<Vec<u8>>,
    /// PEM client certificate, for servers that require one (`tls-auth-clients yes`).
    pub client_cert_pem: Option<Vec<u8>>,
    /// PEM private key of the client certificate.
    pub client_key_pem: Option<Vec<u8>>,
}

impl Tls {
    /// TLS that trusts the system's roots.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts these PEM roots instead of the system's.
    #[must_use]
    pub fn root_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_cert_pem = Some(pem.into());
        self
    }

    /// Presents this client certificate and key (PEM).
    #[must_use]
    pub fn client_identity_pem(
        mut self,
        cert: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
    ) -> Self {
        self.client_cert_pem = Some(cert.into());
        self.client_key_pem = Some(key.into());
        self
    }
}

impl std::fmt::Debug for Tls {
    // Never print the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("root_cert_pem", &self.root_cert_pem.as_ref().map(Vec::len))
            .field(
                "client_cert_pem",
                &self.client_cert_pem.as_ref().map(Vec::len),
            )
            .field(
                "client_key_pem",
                &self.client_key_pem.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            reconnect_base: Duration::from_millis(20),
            reconnect_cap: Duration::from_secs(2),
            credentials: Credentials::default(),
            sentinel_credentials: Credentials::default(),
            database: 0,
            sentinel_poll_interval: Duration::from_secs(1),
            sentinel_fast_poll_interval: Duration::from_millis(100),
            sentinel_fast_poll_for: Duration::from_secs(15),
            cluster_refresh_interval: Duration::from_secs(15),
            cluster_refresh_min_interval: Duration::from_secs(1),
            address_map: None,
            tls: None,
        }
    }
}

impl Config {
    /// Refuses values that cannot work, with a message naming the setting.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let positive = [
            ("connect_timeout", self.connect_timeout),
            ("response_timeout", self.response_timeout),
            ("reconnect_base", self.reconnect_base),
            ("reconnect_cap", self.reconnect_cap),
            ("sentinel_poll_interval", self.sentinel_poll_interval),
            (
                "sentinel_fast_poll_interval",
                self.sentinel_fast_poll_interval,
            ),
        ];
        for (name, value) in positive {
            if value.is_zero() {
                return Err(Error::config(format!("{name} must be greater than zero")));
            }
            // Tokio's timers overflow near u64::MAX ms; a year is absurd anyway.
            if value > Duration::from_secs(365 * 24 * 3600) {
                return Err(Error::config(format!("{name} of {value:?} is absurd")));
            }
        }
        if self.reconnect_cap < self.reconnect_base {
            return Err(Error::config(
                "reconnect_cap must not be below reconnect_base",
            ));
        }
        if self.database < 0 {
            return Err(Error::config("database must not be negative"));
        }
        if let Some(tls) = &self.tls
            && tls.client_cert_pem.is_some() != tls.client_key_pem.is_some()
        {
            return Err(Error::config(
                "a TLS client certificate needs its key, and a key its certificate",
            ));
        }
        if self.tls.is_some() && !cfg!(feature = "tls") {
            return Err(Error::config(
                "tls requested but redis-resilience-service was built without the `tls` feature",
            ));
        }
        Ok(())
    }

    pub(crate) fn has_credentials(&self) -> bool {
        !self.credentials.is_empty()
    }
}
