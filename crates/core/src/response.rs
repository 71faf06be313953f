//! What a request returns: the value and where it came from.

use std::time::Duration;

use crate::route::NodeAddr;

/// Who answered a request, so callers and dashboards can see degradation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServedBy {
    /// The primary (the master, or the cluster primary owning the slot).
    Primary(Option<NodeAddr>),
    /// A replica.
    Replica(Option<NodeAddr>),
    /// A value kept by `StalenessLayer`, `age` old when it was served.
    Stale {
        /// Time since the value was fetched from Redis.
        age: Duration,
    },
    /// The secondary store (the source of truth), Redis being unable to answer.
    Secondary,
}

impl ServedBy {
    /// Whether the answer came from the primary, the normal path.
    #[must_use]
    pub fn is_primary(&self) -> bool {
        matches!(self, Self::Primary(_))
    }

    /// A short, stable label for metrics: `primary`, `replica`, `stale` or `secondary`.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::Primary(_) => "primary",
            Self::Replica(_) => "replica",
            Self::Stale { .. } => "stale",
            Self::Secondary => "secondary",
        }
    }
}

/// A successful answer.
///
/// # Example
///
/// ```
/// use redis_resilience_core::{Response, ServedBy};
///
/// let response = Response::new(redis::Value::Okay, ServedBy::Primary(None));
/// assert!(response.served_by.is_primary());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Response {
    /// The reply. For a pipeline, an array with one element per command whose reply is kept.
    pub value: redis::Value,
    /// Who answered.
    pub served_by: ServedBy,
}

impl Response {
    /// A response.
    #[must_use]
    pub fn new(value: redis::Value, served_by: ServedBy) -> Self {
        Self { value, served_by }
    }
}
