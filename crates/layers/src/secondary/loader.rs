//! What the secondary store is asked ([`Lookup`]) and [`LoaderFn`], an async
//! fn as a loader.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use redis_resilience_core::Request;
use tower_service::Service;

/// One question to the secondary store: the key a read-only request of one
/// key asked Redis for, and the request itself.
///
/// # Example
///
/// ```
/// use redis_resilience_core::Request;
/// use redis_resilience_layers::secondary::Lookup;
///
/// let lookup = Lookup::new(Request::new(redis::cmd("GET").arg("user:42:name").clone()))
///     .expect("one key");
/// assert_eq!(lookup.key(), b"user:42:name");
/// assert_eq!(lookup.key_str(), Some("user:42:name"));
/// assert_eq!(lookup.command(), "get");
/// ```
#[derive(Clone)]
pub struct Lookup {
    key: Arc<[u8]>,
    request: Request,
}

impl Lookup {
    /// The lookup for `request`, if it reads exactly one key.
    #[must_use]
    pub fn new(request: Request) -> Option<Self> {
        let key: Arc<[u8]> = {
            let mut keys = request.keys();
            let key = keys.next()?;
            if keys.next().is_some() {
                return None;
            }
            Arc::from(key)
        };
        Some(Self { key, request })
    }

    /// The key.
    #[must_use]
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The key, when it is UTF-8.
    #[must_use]
    pub fn key_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.key).ok()
    }

    /// The command's lower-case name (`get`, `hget`, …).
    #[must_use]
    pub fn command(&self) -> &'static str {
        self.request.info().name()
    }

    /// The whole request (e.g. for a field argument).
    #[must_use]
    pub fn request(&self) -> &Request {
        &self.request
    }
}

impl fmt::Debug for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key: keys can be personal data.
        f.debug_struct("Lookup")
            .field("command", &self.command())
            .field("key_len", &self.key.len())
            .finish()
    }
}

/// An async fn from [`Lookup`] to `Result<Option<redis::Value>, E>` as a
/// loader: `Ok(None)` means the store has no such key.
///
/// Made by [`SecondaryStoreLayer::from_fn`](super::SecondaryStoreLayer::from_fn),
/// or by [`LoaderFn::new`].
#[derive(Clone)]
pub struct LoaderFn<F> {
    f: F,
}

impl<F> LoaderFn<F> {
    /// `f` as a loader (e.g. for [`SecondaryStoreLayer::with_config`](super::SecondaryStoreLayer::with_config)).
    pub fn new(f: F) -> Self {
        Self { f }
    }
}

impl<F> fmt::Debug for LoaderFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoaderFn").finish_non_exhaustive()
    }
}

impl<F, Fut, E> Service<Lookup> for LoaderFn<F>
where
    F: FnMut(Lookup) -> Fut,
    Fut: Future<Output = Result<Option<redis::Value>, E>>,
{
    type Response = Option<redis::Value>;
    type Error = E;
    type Future = Fut;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, lookup: Lookup) -> Fut {
        (self.f)(lookup)
    }
}
