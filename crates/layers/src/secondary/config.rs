//! [`SecondaryStoreConfig`]: when the secondary store is asked, how fast and how often.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::Quota;
use redis_resilience_core::ErrorKind;

/// Failures after which [`SecondaryStoreLayer`](super::SecondaryStoreLayer)
/// asks the secondary store, by default: Redis could not answer (`Timeout`,
/// `Io`, `Connect`, `CircuitOpen`, `ClusterDown`, `MasterDown`, `Loading`).
///
/// # Example
///
/// ```
/// use redis_resilience_core::ErrorKind;
/// use redis_resilience_layers::secondary::falls_back_on;
///
/// assert!(falls_back_on(&ErrorKind::Connect));
/// assert!(!falls_back_on(&ErrorKind::WrongType));
/// ```
#[must_use]
pub fn falls_back_on(kind: &ErrorKind) -> bool {
    kind.is_availability() || matches!(kind, ErrorKind::CircuitOpen { .. })
}

/// How [`SecondaryStoreLayer`](super::SecondaryStoreLayer) uses the secondary store.
///
/// # Example
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use redis_resilience_layers::secondary::{Quota, SecondaryStoreConfig};
///
/// let config = SecondaryStoreConfig::builder()
///     .timeout(Duration::from_millis(300))
///     .rate_limit(Quota::per_second(NonZeroU32::new(500).expect("non-zero")))
///     .on_miss(Duration::from_secs(60))
///     .commands(["get"])
///     .build();
/// assert_eq!(config.on_miss(), Some(Duration::from_secs(60)));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SecondaryStoreConfig {
    timeout: Duration,
    rate_limit: Option<Quota>,
    on_miss: Option<Duration>,
    commands: Vec<Box<str>>,
    fallback_on: fn(&ErrorKind) -> bool,
}

impl SecondaryStoreConfig {
    /// A builder, starting from the defaults.
    #[must_use]
    pub fn builder() -> SecondaryStoreConfigBuilder {
        SecondaryStoreConfigBuilder {
            config: Self::default(),
        }
    }

    pub(crate) fn builder_from(config: Self) -> SecondaryStoreConfigBuilder {
        SecondaryStoreConfigBuilder { config }
    }

    /// How long one call to the secondary store may take.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How many calls reach the secondary store (`None`: no limit).
    #[must_use]
    pub fn rate_limit(&self) -> Option<Quota> {
        self.rate_limit
    }

    /// Cache-aside: on a miss (Redis answered nil) the store is asked too,
    /// and a value found is written back to Redis with this TTL. `None`: only
    /// when Redis could not answer.
    #[must_use]
    pub fn on_miss(&self) -> Option<Duration> {
        self.on_miss
    }

    /// The commands (lower-case names) the secondary store can answer.
    #[must_use]
    pub fn commands(&self) -> &[Box<str>] {
        &self.commands
    }

    /// Which failures ask the secondary store.
    #[must_use]
    pub fn fallback_on(&self) -> fn(&ErrorKind) -> bool {
        self.fallback_on
    }
}

impl Default for SecondaryStoreConfig {
    /// Timeout 1 s, at most 100 calls a second (burst 100), no cache-aside,
    /// `GET` only, [`falls_back_on`].
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(1),
            rate_limit: Some(Quota::per_second(NonZeroU32::MIN.saturating_add(99))),
            on_miss: None,
            commands: vec!["get".into()],
            fallback_on: falls_back_on,
        }
    }
}

/// Builds a [`SecondaryStoreConfig`].
#[derive(Debug, Clone)]
pub struct SecondaryStoreConfigBuilder {
    config: SecondaryStoreConfig,
}

impl SecondaryStoreConfigBuilder {
    /// How long one call to the secondary store may take (default 1 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// At most this rate of calls reaches the secondary store (default 100 a
    /// second); callers over it get `RateLimited`.
    #[must_use]
    pub fn rate_limit(mut self, quota: Quota) -> Self {
        self.config.rate_limit = Some(quota);
        self
    }

    /// No rate limit.
    #[must_use]
    pub fn unlimited(mut self) -> Self {
        self.config.rate_limit = None;
        self
    }

    /// Cache-aside: also ask the store when Redis answers nil, and write a
    /// value found back to Redis with `ttl` (`SET key value PX ttl`, for `GET`).
    #[must_use]
    pub fn on_miss(mut self, ttl: Duration) -> Self {
        self.config.on_miss = Some(ttl);
        self
    }

    /// The commands the store can answer, by name (default `["get"]`; the
    /// loader sees the command name in [`Lookup::command`](super::Lookup::command)).
    /// Only read-only commands of exactly one key are ever sent to the store.
    #[must_use]
    pub fn commands<I, C>(mut self, commands: I) -> Self
    where
        I: IntoIterator<Item = C>,
        C: AsRef<str>,
    {
        self.config.commands = commands
            .into_iter()
            .map(|name| name.as_ref().to_ascii_lowercase().into_boxed_str())
            .collect();
        self
    }

    /// Which failures ask the secondary store (default [`falls_back_on`]).
    #[must_use]
    pub fn fallback_on(mut self, fallback_on: fn(&ErrorKind) -> bool) -> Self {
        self.config.fallback_on = fallback_on;
        self
    }

    /// The configuration.
    #[must_use]
    pub fn build(self) -> SecondaryStoreConfig {
        self.config
    }
}
