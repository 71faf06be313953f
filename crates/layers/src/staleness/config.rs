//! [`StalenessConfig`]: budget, memory bound and which failures serve stale values.

use std::time::Duration;

use redis_resilience_core::ErrorKind;

/// Failures that let [`StalenessLayer`](super::StalenessLayer) serve a kept
/// value, by default: Redis could not answer (`Timeout`, `Io`, `Connect`,
/// `CircuitOpen`, `ClusterDown`, `MasterDown`, `Loading`), or a
/// [`SecondaryStoreLayer`](crate::SecondaryStoreLayer) inside it could not
/// either (`RateLimited`, `Secondary`). Never semantic errors (`WRONGTYPE`,
/// `NOSCRIPT`, `ERR …`), redirects or bad requests.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use redis_resilience_core::ErrorKind;
/// use redis_resilience_layers::staleness::serves_stale_on;
///
/// assert!(serves_stale_on(&ErrorKind::Timeout));
/// assert!(serves_stale_on(&ErrorKind::CircuitOpen { retry_after: Duration::from_secs(1) }));
/// assert!(!serves_stale_on(&ErrorKind::WrongType));
/// ```
#[must_use]
pub fn serves_stale_on(kind: &ErrorKind) -> bool {
    kind.is_availability()
        || matches!(
            kind,
            ErrorKind::CircuitOpen { .. } | ErrorKind::RateLimited { .. } | ErrorKind::Secondary
        )
}

/// How [`StalenessLayer`](super::StalenessLayer) keeps and serves values.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use redis_resilience_layers::staleness::StalenessConfig;
///
/// let config = StalenessConfig::builder()
///     .budget(Duration::from_secs(30))
///     .max_bytes(16 << 20)
///     .build();
/// assert_eq!(config.budget(), Duration::from_secs(30));
/// assert_eq!(StalenessConfig::default().max_bytes(), 64 << 20);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StalenessConfig {
    budget: Duration,
    max_bytes: u64,
    max_invalidated_keys: usize,
    serve_on: fn(&ErrorKind) -> bool,
}

impl StalenessConfig {
    /// A builder, starting from the defaults.
    #[must_use]
    pub fn builder() -> StalenessConfigBuilder {
        StalenessConfigBuilder {
            config: Self::default(),
        }
    }

    /// The oldest value served (a request's `max_staleness` can only lower it).
    #[must_use]
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// The bound on the kept values, in bytes (keys, values and bookkeeping, estimated).
    #[must_use]
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// How many recently invalidated keys are remembered one by one; past
    /// that, an invalidation forgets every kept value instead.
    #[must_use]
    pub fn max_invalidated_keys(&self) -> usize {
        self.max_invalidated_keys
    }

    /// Which failures serve a kept value.
    #[must_use]
    pub fn serve_on(&self) -> fn(&ErrorKind) -> bool {
        self.serve_on
    }
}

impl Default for StalenessConfig {
    /// Budget 60 s, 64 MiB, 100 000 invalidated keys remembered,
    /// [`serves_stale_on`].
    fn default() -> Self {
        Self {
            budget: Duration::from_secs(60),
            max_bytes: 64 << 20,
            max_invalidated_keys: 100_000,
            serve_on: serves_stale_on,
        }
    }
}

/// Builds a [`StalenessConfig`].
#[derive(Debug, Clone)]
pub struct StalenessConfigBuilder {
    config: StalenessConfig,
}

impl StalenessConfigBuilder {
    /// The oldest value served (default 60 s).
    #[must_use]
    pub fn budget(mut self, budget: Duration) -> Self {
        self.config.budget = budget;
        self
    }

    /// The bound on kept values, in bytes (default 64 MiB).
    #[must_use]
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.config.max_bytes = max_bytes;
        self
    }

    /// How many recently invalidated keys are remembered one by one (default
    /// 100 000); an invalidation past that forgets every kept value.
    #[must_use]
    pub fn max_invalidated_keys(mut self, keys: usize) -> Self {
        self.config.max_invalidated_keys = keys;
        self
    }

    /// Which failures serve a kept value (default [`serves_stale_on`]).
    #[must_use]
    pub fn serve_on(mut self, serve_on: fn(&ErrorKind) -> bool) -> Self {
        self.config.serve_on = serve_on;
        self
    }

    /// The configuration.
    #[must_use]
    pub fn build(self) -> StalenessConfig {
        self.config
    }
}
