//! [`ReplicaFallbackLayer`].

use redis_resilience_core::{Error, ErrorKind, ReadFrom, Request, Route};
use tower_layer::Layer;

use super::service::ReplicaFallback;

/// Wraps services in [`ReplicaFallback`].
///
/// # Example
///
/// ```
/// use redis_resilience_core::ReadFrom;
/// use redis_resilience_layers::ReplicaFallbackLayer;
///
/// let layer = ReplicaFallbackLayer::new().read_from(ReadFrom::AnyHealthy);
/// assert_eq!(layer.replica(), ReadFrom::AnyHealthy);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplicaFallbackLayer {
    read_from: ReadFrom,
}

impl ReplicaFallbackLayer {
    /// Falls back to the replica with the lowest lag.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Which replica to fall back to.
    #[must_use]
    pub fn read_from(mut self, read_from: ReadFrom) -> Self {
        self.read_from = read_from;
        self
    }

    /// The replica choice.
    #[must_use]
    pub fn replica(&self) -> ReadFrom {
        self.read_from
    }
}

impl<S> Layer<S> for ReplicaFallbackLayer {
    type Service = ReplicaFallback<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ReplicaFallback::new(inner, self.read_from)
    }
}

/// Whether a request may be answered by a replica at all.
pub(crate) fn eligible(request: &Request) -> bool {
    request.info().is_readonly()
        && !request.options().authoritative
        && matches!(request.route(), Route::Auto)
}

/// Whether the primary's failure is one a replica can make up for.
pub(crate) fn falls_back_on(error: &Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Connect
            | ErrorKind::Timeout
            | ErrorKind::Io
            | ErrorKind::CircuitOpen { .. }
            | ErrorKind::MasterDown
    )
}
