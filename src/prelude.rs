//! The names most programs need: `use redis_resilience::prelude::*;`.

pub use crate::ServiceBuilderExt;
#[cfg(feature = "coalesce")]
pub use crate::layers::CoalesceLayer;
#[cfg(feature = "observe")]
pub use crate::layers::ObserveLayer;
#[cfg(feature = "redirect")]
pub use crate::layers::RedirectLayer;
#[cfg(feature = "replica-fallback")]
pub use crate::layers::ReplicaFallbackLayer;
#[cfg(feature = "secondary")]
pub use crate::layers::SecondaryStoreLayer;
#[cfg(feature = "staleness")]
pub use crate::layers::StalenessLayer;
#[cfg(feature = "circuit-breaker")]
pub use crate::layers::{CircuitBreakerConfig, CircuitBreakerLayer};
#[cfg(feature = "retry")]
pub use crate::layers::{RetryLayer, RetryPolicy};
#[cfg(all(
    feature = "observe",
    feature = "staleness",
    feature = "coalesce",
    feature = "retry",
    feature = "replica-fallback",
    feature = "circuit-breaker",
    feature = "redirect"
))]
pub use crate::presets::Presets;
pub use crate::{
    Client, Error, ErrorKind, ReadFrom, RedisService, Request, Response, Route, Sent, ServedBy,
};
