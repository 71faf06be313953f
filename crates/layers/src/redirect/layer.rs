//! [`RedirectLayer`].

use std::sync::Arc;

use tower_layer::Layer;

use super::policy::RedirectPolicy;
use super::service::Redirect;

/// Wraps services in [`Redirect`]: follows cluster `MOVED` and `ASK`
/// redirects.
///
/// # Example
///
/// ```
/// use redis_resilience_layers::{RedirectLayer, RedirectPolicy};
///
/// let layer = RedirectLayer::new();
/// assert_eq!(layer.policy().max_hops(), 5);
/// let layer = RedirectLayer::with_policy(RedirectPolicy::builder().max_hops(2).build());
/// assert_eq!(layer.policy().max_hops(), 2);
/// ```
#[derive(Debug, Clone, Default)]
pub struct RedirectLayer {
    policy: Arc<RedirectPolicy>,
}

impl RedirectLayer {
    /// A layer with the default [`RedirectPolicy`].
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A layer with `policy`.
    #[must_use]
    pub fn with_policy(policy: RedirectPolicy) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> &RedirectPolicy {
        &self.policy
    }
}

impl<S> Layer<S> for RedirectLayer {
    type Service = Redirect<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Redirect::from_policy(inner, Arc::clone(&self.policy))
    }
}
