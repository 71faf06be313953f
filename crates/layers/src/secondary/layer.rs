//! [`SecondaryStoreLayer`] and the state its services share.

use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use redis_resilience_core::{Error, Response};
use tower_layer::Layer;

use super::config::{SecondaryStoreConfig, SecondaryStoreConfigBuilder};
use super::loader::LoaderFn;
use super::service::SecondaryStore;
use crate::coalesce::flight::Flights;

/// governor's clock, read through tokio so that tests with paused time see
/// the limiter refill as the mocked clock advances.
#[derive(Debug, Clone)]
pub(crate) struct TokioClock {
    origin: tokio::time::Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

/// A flight's result and the metric outcome of its call to the store.
pub(crate) type Outcome = (Result<Response, Error>, &'static str);

/// What every clone of a layer shares (the loader is not shared: each
/// service holds a clone, so a loader need not be `Sync`).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: SecondaryStoreConfig,
    limiter: Option<(Limiter, TokioClock)>,
    pub(crate) flights: Arc<Flights<Arc<[u8]>, Outcome>>,
}

impl Shared {
    fn new(config: SecondaryStoreConfig) -> Self {
        let limiter = config.rate_limit().map(|quota| {
            let clock = TokioClock {
                origin: tokio::time::Instant::now(),
            };
            (RateLimiter::direct_with_clock(quota, clock.clone()), clock)
        });
        Self {
            config,
            limiter,
            flights: Arc::new(Flights::new()),
        }
    }

    /// Takes one call's worth of the rate limit, or says how long until there is one.
    pub(crate) fn admit(&self) -> Result<(), Duration> {
        match &self.limiter {
            None => Ok(()),
            Some((limiter, clock)) => limiter
                .check()
                .map_err(|not_until| not_until.wait_time_from(clock.now())),
        }
    }
}

/// Wraps services in [`SecondaryStore`]: when Redis could not answer a read,
/// asks the application's secondary store (its source of truth).
///
/// The loader is any [`Service`](tower_service::Service) from
/// [`Lookup`](super::Lookup) to `Option<redis::Value>` (`None`: no such key),
/// or an async fn through [`from_fn`](Self::from_fn). Every service the
/// layer wraps, and every clone of the layer, shares one rate limit and one
/// in-flight map (each holds its own clone of the loader); configure the
/// layer before cloning it (each builder method starts a fresh limiter).
///
/// # Example
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use redis_resilience_layers::SecondaryStoreLayer;
/// use redis_resilience_layers::secondary::{Lookup, Quota};
///
/// let layer = SecondaryStoreLayer::from_fn(|lookup: Lookup| async move {
///     // SELECT value FROM kv WHERE key = $1
///     let _key = lookup.key();
///     Ok::<_, std::io::Error>(Some(redis::Value::BulkString(b"from the database".to_vec())))
/// })
/// .rate_limit(Quota::per_second(NonZeroU32::new(500).expect("non-zero")))
/// .timeout(Duration::from_millis(250));
/// assert_eq!(layer.config().timeout(), Duration::from_millis(250));
/// ```
#[derive(Debug, Clone)]
pub struct SecondaryStoreLayer<L> {
    loader: L,
    shared: Arc<Shared>,
}

impl<L> SecondaryStoreLayer<L> {
    /// A layer asking `loader`, with the default [`SecondaryStoreConfig`].
    pub fn new(loader: L) -> Self {
        Self::with_config(loader, SecondaryStoreConfig::default())
    }

    /// A layer asking `loader`, with `config`.
    pub fn with_config(loader: L, config: SecondaryStoreConfig) -> Self {
        Self {
            loader,
            shared: Arc::new(Shared::new(config)),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &SecondaryStoreConfig {
        &self.shared.config
    }

    /// Calls to the secondary store in flight now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.shared.flights.len()
    }

    fn reconfigure(
        self,
        change: impl FnOnce(SecondaryStoreConfigBuilder) -> SecondaryStoreConfigBuilder,
    ) -> Self {
        let config = change(SecondaryStoreConfig::builder_from(
            self.shared.config.clone(),
        ))
        .build();
        Self::with_config(self.loader, config)
    }

    /// At most `quota` calls reach the secondary store.
    #[must_use]
    pub fn rate_limit(self, quota: Quota) -> Self {
        self.reconfigure(|config| config.rate_limit(quota))
    }

    /// One call to the secondary store may take at most `timeout`.
    #[must_use]
    pub fn timeout(self, timeout: Duration) -> Self {
        self.reconfigure(|config| config.timeout(timeout))
    }

    /// Cache-aside: also ask the store when Redis answers nil, and write a
    /// value found back with `ttl`.
    #[must_use]
    pub fn on_miss(self, ttl: Duration) -> Self {
        self.reconfigure(|config| config.on_miss(ttl))
    }
}

impl<F> SecondaryStoreLayer<LoaderFn<F>> {
    /// A layer asking an async fn, with the default [`SecondaryStoreConfig`].
    pub fn from_fn(f: F) -> Self {
        Self::new(LoaderFn::new(f))
    }
}

impl<S, L: Clone> Layer<S> for SecondaryStoreLayer<L> {
    type Service = SecondaryStore<S, L>;

    fn layer(&self, inner: S) -> Self::Service {
        SecondaryStore::from_shared(inner, self.loader.clone(), Arc::clone(&self.shared))
    }
}
