//! [`CoalesceLayer`] and the in-flight map its services share.

use std::sync::Arc;

use redis_resilience_core::{Error, Response, Route};
use tower_layer::Layer;

use super::flight::Flights;
use super::service::Coalesce;

/// What identifies identical requests: the packed command bytes and the
/// routing class.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct FlightKey {
    pub(crate) route: Route,
    pub(crate) no_retry: bool,
    pub(crate) command: Box<[u8]>,
}

/// The result every waiter of a flight gets.
pub(crate) type Outcome = Result<Response, Error>;

/// The in-flight map every clone of a layer shares.
pub(crate) type Shared = Flights<Arc<FlightKey>, Outcome>;

/// Wraps services in [`Coalesce`]: one upstream call per identical in-flight
/// read.
///
/// Every service the layer wraps, and every clone of the layer, shares one
/// in-flight map: the same GET sent through two routes' stacks built from
/// one layer is still sent once.
///
/// # Example
///
/// ```
/// use redis_resilience_layers::CoalesceLayer;
///
/// let layer = CoalesceLayer::new();
/// let per_route = layer.clone(); // shares the in-flight map
/// assert_eq!(per_route.in_flight(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct CoalesceLayer {
    shared: Arc<Shared>,
}

impl CoalesceLayer {
    /// A layer with an in-flight map of its own.
    #[must_use]
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Flights::new()),
        }
    }

    /// Flights in the air now (distinct requests being sent).
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.shared.len()
    }
}

impl Default for CoalesceLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for CoalesceLayer {
    type Service = Coalesce<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Coalesce::from_shared(inner, Arc::clone(&self.shared))
    }
}
