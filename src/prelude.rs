//! The names most programs need: `use redis_resilience::prelude::*;`.

pub use crate::ServiceBuilderExt;
pub use crate::layers::{
    CircuitBreakerConfig, CircuitBreakerLayer, CoalesceLayer, ObserveLayer, RedirectLayer,
    ReplicaFallbackLayer, RetryLayer, RetryPolicy, SecondaryStoreLayer, StalenessLayer,
};
pub use crate::presets::Presets;
pub use crate::{
    Client, Error, ErrorKind, ReadFrom, RedisService, Request, Response, Route, Sent, ServedBy,
};
