//! [`ServiceBuilderExt`]: one `tower::ServiceBuilder` method per layer.

#[cfg(feature = "circuit-breaker")]
use redis_resilience_layers::CircuitBreakerLayer;
#[cfg(feature = "coalesce")]
use redis_resilience_layers::CoalesceLayer;
#[cfg(feature = "observe")]
use redis_resilience_layers::ObserveLayer;
#[cfg(feature = "redirect")]
use redis_resilience_layers::RedirectLayer;
#[cfg(feature = "replica-fallback")]
use redis_resilience_layers::ReplicaFallbackLayer;
#[cfg(feature = "retry")]
use redis_resilience_layers::RetryLayer;
#[cfg(feature = "secondary")]
use redis_resilience_layers::SecondaryStoreLayer;
#[cfg(feature = "staleness")]
use redis_resilience_layers::StalenessLayer;
use tower::ServiceBuilder;
#[cfg_attr(
    not(any(
        feature = "circuit-breaker",
        feature = "coalesce",
        feature = "observe",
        feature = "redirect",
        feature = "replica-fallback",
        feature = "retry",
        feature = "secondary",
        feature = "staleness"
    )),
    expect(unused_imports, reason = "no layer is enabled")
)]
use tower::layer::util::Stack;

/// Adds the redis-resilience layers to a `tower::ServiceBuilder`, so a stack
/// reads in the recommended order (outermost first).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use redis_resilience::layers::{CircuitBreakerConfig, CircuitBreakerLayer, RetryPolicy};
/// use redis_resilience::{Error, Request, Response, ServedBy, ServiceBuilderExt};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// // Stands in for a RedisService.
/// let redis = service_fn(|_request: Request| async {
///     Ok::<_, Error>(Response::new(redis::Value::Okay, ServedBy::Primary(None)))
/// });
/// let svc = ServiceBuilder::new()
///     .observe()
///     .idempotent_retry(RetryPolicy::default())
///     .replica_fallback()
///     .circuit_breaker(CircuitBreakerLayer::new(CircuitBreakerConfig::default()))
///     .redirects()
///     .service(redis);
/// svc.oneshot(Request::new(redis::cmd("PING").clone())).await?;
/// # Ok(()) }
/// ```
pub trait ServiceBuilderExt<L>: Sized {
    /// [`ObserveLayer`]: spans and routing metrics (outermost).
    #[cfg(feature = "observe")]
    fn observe(self) -> ServiceBuilder<Stack<ObserveLayer, L>>;
    /// [`SecondaryStoreLayer`]: the source of truth when Redis cannot answer.
    #[cfg(feature = "secondary")]
    fn secondary_store<Loader>(
        self,
        layer: SecondaryStoreLayer<Loader>,
    ) -> ServiceBuilder<Stack<SecondaryStoreLayer<Loader>, L>>;
    /// [`StalenessLayer`]: last-good values within a staleness budget.
    #[cfg(feature = "staleness")]
    fn staleness(self, layer: StalenessLayer) -> ServiceBuilder<Stack<StalenessLayer, L>>;
    /// [`CoalesceLayer`]: one upstream call per identical in-flight read.
    #[cfg(feature = "coalesce")]
    fn coalesce(self, layer: CoalesceLayer) -> ServiceBuilder<Stack<CoalesceLayer, L>>;
    /// [`RetryLayer`] with `policy`: retries that never repeat a
    /// non-idempotent command whose fate is unknown.
    #[cfg(feature = "retry")]
    fn idempotent_retry(
        self,
        policy: redis_resilience_layers::RetryPolicy,
    ) -> ServiceBuilder<Stack<RetryLayer, L>>;
    /// [`RetryLayer`], shared: every stack built with the same layer shares its budget.
    #[cfg(feature = "retry")]
    fn retry_layer(self, layer: RetryLayer) -> ServiceBuilder<Stack<RetryLayer, L>>;
    /// [`ReplicaFallbackLayer`]: failed reads to a healthy replica, once.
    #[cfg(feature = "replica-fallback")]
    fn replica_fallback(self) -> ServiceBuilder<Stack<ReplicaFallbackLayer, L>>;
    /// [`CircuitBreakerLayer`]: stop sending to a failing node.
    #[cfg(feature = "circuit-breaker")]
    fn circuit_breaker(
        self,
        layer: CircuitBreakerLayer,
    ) -> ServiceBuilder<Stack<CircuitBreakerLayer, L>>;
    /// [`RedirectLayer`]: follow `MOVED` and `ASK` (innermost).
    #[cfg(feature = "redirect")]
    fn redirects(self) -> ServiceBuilder<Stack<RedirectLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    #[cfg(feature = "observe")]
    fn observe(self) -> ServiceBuilder<Stack<ObserveLayer, L>> {
        self.layer(ObserveLayer::new())
    }

    #[cfg(feature = "secondary")]
    fn secondary_store<Loader>(
        self,
        layer: SecondaryStoreLayer<Loader>,
    ) -> ServiceBuilder<Stack<SecondaryStoreLayer<Loader>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "staleness")]
    fn staleness(self, layer: StalenessLayer) -> ServiceBuilder<Stack<StalenessLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "coalesce")]
    fn coalesce(self, layer: CoalesceLayer) -> ServiceBuilder<Stack<CoalesceLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "retry")]
    fn idempotent_retry(
        self,
        policy: redis_resilience_layers::RetryPolicy,
    ) -> ServiceBuilder<Stack<RetryLayer, L>> {
        self.layer(RetryLayer::new(policy))
    }

    #[cfg(feature = "retry")]
    fn retry_layer(self, layer: RetryLayer) -> ServiceBuilder<Stack<RetryLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "replica-fallback")]
    fn replica_fallback(self) -> ServiceBuilder<Stack<ReplicaFallbackLayer, L>> {
        self.layer(ReplicaFallbackLayer::new())
    }

    #[cfg(feature = "circuit-breaker")]
    fn circuit_breaker(
        self,
        layer: CircuitBreakerLayer,
    ) -> ServiceBuilder<Stack<CircuitBreakerLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "redirect")]
    fn redirects(self) -> ServiceBuilder<Stack<RedirectLayer, L>> {
        self.layer(RedirectLayer::new())
    }
}
