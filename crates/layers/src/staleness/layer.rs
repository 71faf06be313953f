//! [`StalenessLayer`]: the kept values every clone shares, and invalidation.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tower_layer::Layer;

use super::cache::Shared;
use super::config::StalenessConfig;
use super::invalidation::Invalidation;
use super::service::Staleness;

/// Wraps services in [`Staleness`]: keeps the last good value of reads and
/// serves it, tagged [`ServedBy::Stale`](redis_resilience_core::ServedBy::Stale),
/// when Redis cannot answer.
///
/// Every service the layer wraps, and every clone of the layer, shares one
/// store of kept values, one memory bound and one set of invalidations.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use redis_resilience_layers::StalenessLayer;
///
/// let layer = StalenessLayer::new(Duration::from_secs(30));
/// assert_eq!(layer.config().budget(), Duration::from_secs(30));
/// // The application changed `user:42:name`: never serve its old value.
/// layer.invalidate("user:42:name");
/// assert_eq!(layer.kept_values(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct StalenessLayer {
    shared: Arc<Shared>,
}

impl StalenessLayer {
    /// A layer serving values no older than `budget`, with the other defaults
    /// of [`StalenessConfig`].
    #[must_use]
    pub fn new(budget: Duration) -> Self {
        Self::with_config(StalenessConfig::builder().budget(budget).build())
    }

    /// A layer with `config`.
    #[must_use]
    pub fn with_config(config: StalenessConfig) -> Self {
        Self {
            shared: Arc::new(Shared::new(config)),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &StalenessConfig {
        &self.shared.config
    }

    /// Forgets the values of every request that reads `key`, and stops
    /// fetches already in flight from keeping theirs: reads of `key` are
    /// authoritative-only until one that started after this call succeeds.
    pub fn invalidate(&self, key: impl AsRef<[u8]>) {
        self.shared.invalidate(key.as_ref());
    }

    /// Forgets every kept value, and stops fetches in flight from keeping theirs.
    pub fn invalidate_all(&self) {
        self.shared.invalidate_all();
    }

    /// Applies one invalidation.
    pub fn apply(&self, invalidation: &Invalidation) {
        apply(&self.shared, invalidation);
    }

    /// Applies every invalidation `invalidations` yields, on a task of its
    /// own, until the stream ends or every clone of the layer is dropped.
    ///
    /// Any stream of keys works: [`pubsub_invalidations`](super::pubsub_invalidations)
    /// (a pub/sub channel the application publishes changed keys to),
    /// [`tracking_invalidations`](super::tracking_invalidations) (RESP3
    /// `CLIENT TRACKING`), or the application's own (e.g. a tokio channel
    /// wrapped in a stream). Needs a tokio runtime.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use redis_resilience_layers::StalenessLayer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let layer = StalenessLayer::new(Duration::from_secs(30));
    /// let changed = futures_util::stream::iter(["user:42:name", "user:7:name"]);
    /// layer.listen(changed).await.expect("the listener ran to the stream's end");
    /// # }
    /// ```
    pub fn listen<St>(&self, invalidations: St) -> tokio::task::JoinHandle<()>
    where
        St: Stream + Send + 'static,
        St::Item: Into<Invalidation>,
    {
        let shared = Arc::downgrade(&self.shared);
        tokio::spawn(forward(shared, invalidations))
    }

    /// Invalidations applied so far (a key, or all of them, counts one):
    /// lets a caller see that a published invalidation has arrived.
    #[must_use]
    pub fn invalidations(&self) -> u64 {
        self.shared.invalidations()
    }

    /// Values kept now.
    #[must_use]
    pub fn kept_values(&self) -> usize {
        self.shared.entries()
    }

    /// Estimated bytes the kept values take.
    #[must_use]
    pub fn kept_bytes(&self) -> u64 {
        self.shared.bytes()
    }
}

impl Default for StalenessLayer {
    /// A layer with the default [`StalenessConfig`] (budget 60 s, 64 MiB).
    fn default() -> Self {
        Self::with_config(StalenessConfig::default())
    }
}

impl<S> Layer<S> for StalenessLayer {
    type Service = Staleness<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Staleness::from_shared(inner, Arc::clone(&self.shared))
    }
}

fn apply(shared: &Shared, invalidation: &Invalidation) {
    match invalidation {
        Invalidation::Key(key) => shared.invalidate(key),
        Invalidation::All => shared.invalidate_all(),
    }
}

async fn forward<St>(shared: Weak<Shared>, invalidations: St)
where
    St: Stream,
    St::Item: Into<Invalidation>,
{
    let mut invalidations = std::pin::pin!(invalidations);
    while let Some(invalidation) = invalidations.next().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        apply(&shared, &invalidation.into());
    }
}
