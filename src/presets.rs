//! Ready-made stacks for the common cases, sharing one set of layers.
//!
//! [`Presets`] holds one instance of each layer: every stack it builds — a
//! cache-reads stack for one route, a critical-writes stack for another —
//! shares the same circuit breakers, retry budget and staleness cache, as
//! DESIGN §5 asks (shared state lives behind `Arc` in the layers).
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), redis_resilience::Error> {
//! use redis_resilience::presets::Presets;
//! use redis_resilience::{Client, RedisService};
//!
//! let redis = RedisService::standalone("redis://127.0.0.1:6379").await?;
//! let presets = Presets::new(&redis);
//! let reads = Client::new(presets.cache_reads(redis.clone()));
//! let writes = Client::new(presets.critical_writes(redis));
//! # let _ = (reads, writes);
//! # Ok(()) }
//! ```

use std::time::Duration;

use redis_resilience_layers::{
    CircuitBreaker, CircuitBreakerConfig, CircuitBreakerHandle, CircuitBreakerLayer, Coalesce,
    CoalesceLayer, Observe, ObserveLayer, Redirect, RedirectLayer, ReplicaFallback,
    ReplicaFallbackLayer, Retry, RetryLayer, RetryPolicy, Staleness, StalenessLayer,
};
use redis_resilience_service::RedisService;
use tower::Layer;

/// Reads that may be answered by a replica or a kept value:
/// Observe → Staleness → Coalesce → Retry → ReplicaFallback → CircuitBreaker → Redirect.
pub type CacheReads =
    Observe<Staleness<Coalesce<Retry<ReplicaFallback<CircuitBreaker<Redirect<RedisService>>>>>>>;

/// Writes that must reach the primary, retried only when that cannot repeat
/// them: Observe → Retry → CircuitBreaker → Redirect.
pub type CriticalWrites = Observe<Retry<CircuitBreaker<Redirect<RedisService>>>>;

/// One set of layers, shared by every stack built from it.
#[derive(Debug, Clone)]
pub struct Presets {
    observe: ObserveLayer,
    staleness: StalenessLayer,
    coalesce: CoalesceLayer,
    retry: RetryLayer,
    fallback: ReplicaFallbackLayer,
    breaker: CircuitBreakerLayer,
    redirect: RedirectLayer,
}

impl Presets {
    /// Defaults (DESIGN §5): a 60 s staleness budget, 3 attempts with full
    /// jitter and a 10 % retry budget, one circuit breaker per node of `redis`.
    #[must_use]
    pub fn new(redis: &RedisService) -> Self {
        Self {
            observe: ObserveLayer::new(),
            staleness: StalenessLayer::new(Duration::from_secs(60)),
            coalesce: CoalesceLayer::new(),
            retry: RetryLayer::new(RetryPolicy::default()),
            fallback: ReplicaFallbackLayer::new(),
            breaker: CircuitBreakerLayer::per_node(
                redis.topology(),
                CircuitBreakerConfig::default(),
            ),
            redirect: RedirectLayer::new(),
        }
    }

    /// Uses this staleness layer (its budget, its cache).
    #[must_use]
    pub fn with_staleness(mut self, layer: StalenessLayer) -> Self {
        self.staleness = layer;
        self
    }

    /// Uses this retry layer (its policy, its budget).
    #[must_use]
    pub fn with_retry(mut self, layer: RetryLayer) -> Self {
        self.retry = layer;
        self
    }

    /// Uses this circuit breaker layer.
    #[must_use]
    pub fn with_circuit_breaker(mut self, layer: CircuitBreakerLayer) -> Self {
        self.breaker = layer;
        self
    }

    /// Records raw keys in spans (only if keys are not personal data).
    #[must_use]
    pub fn with_observe(mut self, layer: ObserveLayer) -> Self {
        self.observe = layer;
        self
    }

    /// The stack for reads that tolerate a replica or a kept value.
    #[must_use]
    pub fn cache_reads(&self, redis: RedisService) -> CacheReads {
        let inner = self.redirect.layer(redis);
        let inner = self.breaker.layer(inner);
        let inner = self.fallback.layer(inner);
        let inner = self.retry.layer(inner);
        let inner = self.coalesce.layer(inner);
        let inner = self.staleness.layer(inner);
        self.observe.layer(inner)
    }

    /// The stack for writes.
    #[must_use]
    pub fn critical_writes(&self, redis: RedisService) -> CriticalWrites {
        let inner = self.redirect.layer(redis);
        let inner = self.breaker.layer(inner);
        let inner = self.retry.layer(inner);
        self.observe.layer(inner)
    }

    /// The shared circuit breakers, to read or force their states.
    #[must_use]
    pub fn circuit_breaker(&self) -> CircuitBreakerHandle {
        self.breaker.handle()
    }

    /// The shared staleness layer, e.g. to `invalidate` a key.
    #[must_use]
    pub fn staleness(&self) -> &StalenessLayer {
        &self.staleness
    }
}
