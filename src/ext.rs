//! [`ServiceBuilderExt`]: one `tower::ServiceBuilder` method per layer.

use redis_resilience_layers::{
    CircuitBreakerLayer, CoalesceLayer, ObserveLayer, RedirectLayer, ReplicaFallbackLayer,
    RetryLayer, SecondaryStoreLayer, StalenessLayer,
};
use tower::ServiceBuilder;
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
    fn observe(self) -> ServiceBuilder<Stack<ObserveLayer, L>>;
    /// [`SecondaryStoreLayer`]: the source of truth when Redis cannot answer.
    fn secondary_store<Loader>(
        self,
        layer: SecondaryStoreLayer<Loader>,
    ) -> ServiceBuilder<Stack<SecondaryStoreLayer<Loader>, L>>;
    /// [`StalenessLayer`]: last-good values within a staleness budget.
    fn staleness(self, layer: StalenessLayer) -> ServiceBuilder<Stack<StalenessLayer, L>>;
    /// [`CoalesceLayer`]: one upstream call per identical in-flight read.
    fn coalesce(self, layer: CoalesceLayer) -> ServiceBuilder<Stack<CoalesceLayer, L>>;
    /// [`RetryLayer`] with `policy`: retries that never repeat a
    /// non-idempotent command whose fate is unknown.
    fn idempotent_retry(
        self,
        policy: redis_resilience_layers::RetryPolicy,
    ) -> ServiceBuilder<Stack<RetryLayer, L>>;
    /// [`RetryLayer`], shared: every stack built with the same layer shares its budget.
    fn retry_layer(self, layer: RetryLayer) -> ServiceBuilder<Stack<RetryLayer, L>>;
    /// [`ReplicaFallbackLayer`]: failed reads to a healthy replica, once.
    fn replica_fallback(self) -> ServiceBuilder<Stack<ReplicaFallbackLayer, L>>;
    /// [`CircuitBreakerLayer`]: stop sending to a failing node.
    fn circuit_breaker(
        self,
        layer: CircuitBreakerLayer,
    ) -> ServiceBuilder<Stack<CircuitBreakerLayer, L>>;
    /// [`RedirectLayer`]: follow `MOVED` and `ASK` (innermost).
    fn redirects(self) -> ServiceBuilder<Stack<RedirectLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn observe(self) -> ServiceBuilder<Stack<ObserveLayer, L>> {
        self.layer(ObserveLayer::new())
    }

    fn secondary_store<Loader>(
        self,
        layer: SecondaryStoreLayer<Loader>,
    ) -> ServiceBuilder<Stack<SecondaryStoreLayer<Loader>, L>> {
        self.layer(layer)
    }

    fn staleness(self, layer: StalenessLayer) -> ServiceBuilder<Stack<StalenessLayer, L>> {
        self.layer(layer)
    }

    fn coalesce(self, layer: CoalesceLayer) -> ServiceBuilder<Stack<CoalesceLayer, L>> {
        self.layer(layer)
    }

    fn idempotent_retry(
        self,
        policy: redis_resilience_layers::RetryPolicy,
    ) -> ServiceBuilder<Stack<RetryLayer, L>> {
        self.layer(RetryLayer::new(policy))
    }

    fn retry_layer(self, layer: RetryLayer) -> ServiceBuilder<Stack<RetryLayer, L>> {
        self.layer(layer)
    }

    fn replica_fallback(self) -> ServiceBuilder<Stack<ReplicaFallbackLayer, L>> {
        self.layer(ReplicaFallbackLayer::new())
    }

    fn circuit_breaker(
        self,
        layer: CircuitBreakerLayer,
    ) -> ServiceBuilder<Stack<CircuitBreakerLayer, L>> {
        self.layer(layer)
    }

    fn redirects(self) -> ServiceBuilder<Stack<RedirectLayer, L>> {
        self.layer(RedirectLayer::new())
    }
}
