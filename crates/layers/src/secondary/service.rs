//! [`SecondaryStore`]: the service [`SecondaryStoreLayer`](super::SecondaryStoreLayer)
//! wraps around another.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use redis_resilience_core::{Command, Error, Request, Response};
use tower_service::Service;

use super::future::{Pending, ResponseFuture};
use super::layer::Shared;
use super::loader::Lookup;
use super::{BoxError, SecondaryStoreConfig};

/// Asks a secondary store when `inner` (Redis) could not answer a read.
///
/// Built by [`SecondaryStoreLayer`](super::SecondaryStoreLayer); every
/// `SecondaryStore` made by one layer (and their clones) shares its rate
/// limit and in-flight map. See the [module docs](super) for the rules.
///
/// # Example
///
/// ```
/// use redis_resilience_core::{Error, Request, Response, ServedBy};
/// use redis_resilience_layers::SecondaryStoreLayer;
/// use redis_resilience_layers::secondary::Lookup;
/// use tower::{Layer, service_fn};
///
/// let redis = service_fn(|_request: Request| async {
///     Ok::<_, Error>(Response::new(redis::Value::Nil, ServedBy::Primary(None)))
/// });
/// let layer = SecondaryStoreLayer::from_fn(|_lookup: Lookup| async {
///     Ok::<Option<redis::Value>, std::io::Error>(None)
/// });
/// let mut svc = layer.layer(redis);
/// let _inner = svc.get_mut();
/// let _redis = svc.into_inner();
/// ```
#[derive(Clone)]
pub struct SecondaryStore<S, L> {
    inner: S,
    loader: L,
    shared: Arc<Shared>,
}

impl<S, L> SecondaryStore<S, L> {
    pub(crate) fn from_shared(inner: S, loader: L, shared: Arc<Shared>) -> Self {
        Self {
            inner,
            loader,
            shared,
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &SecondaryStoreConfig {
        &self.shared.config
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, consuming `self`.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, L> Service<Request> for SecondaryStore<S, L>
where
    S: Service<Request, Response = Response, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
    L: Service<Lookup, Response = Option<redis::Value>> + Clone + Send + 'static,
    L::Error: Into<BoxError>,
    L::Future: Send + 'static,
{
    type Response = Response;
    type Error = Error;
    type Future = ResponseFuture<S, L>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let Some(lookup) = eligible(&self.shared.config, &request) else {
            return ResponseFuture::new(self.inner.call(request), None);
        };
        let write_back = self
            .shared
            .config
            .on_miss()
            .map(|ttl| (self.inner.clone(), ttl));
        let future = self.inner.call(request);
        let pending = Pending {
            shared: Arc::clone(&self.shared),
            loader: self.loader.clone(),
            lookup,
            write_back,
        };
        ResponseFuture::new(future, Some(pending))
    }
}

impl<S: fmt::Debug, L> fmt::Debug for SecondaryStore<S, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecondaryStore")
            .field("inner", &self.inner)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

/// The lookup for a request the store can answer: one read-only,
/// non-blocking, non-authoritative command of one key, among the configured ones.
fn eligible(config: &SecondaryStoreConfig, request: &Request) -> Option<Lookup> {
    let info = request.info();
    if !matches!(request.command(), Command::Single(_))
        || !info.is_readonly()
        || info.is_blocking()
        || request.options().authoritative
        || !config.commands().iter().any(|name| **name == *info.name())
    {
        return None;
    }
    Lookup::new(request.clone())
}
