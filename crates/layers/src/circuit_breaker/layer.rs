//! [`CircuitBreakerLayer`], its scope (one breaker, or one per node) and
//! [`CircuitBreakerHandle`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use redis_resilience_core::{NodeAddr, Request, Topology};
use tower_layer::Layer;

use super::config::CircuitBreakerConfig;
use super::service::CircuitBreaker;
use super::state::{Breaker, CircuitState};

/// Wraps services in [`CircuitBreaker`]: fails calls at once while the node
/// they would go to is failing.
///
/// Every clone of the layer, and every service it wraps, shares the same
/// breakers: one global breaker ([`new`](Self::new)), or one per node as the
/// service's [`Topology`] names it ([`per_node`](Self::per_node)), so one sick
/// shard never opens the circuit for the others.
///
/// # Example
///
/// ```
/// use redis_resilience_layers::{CircuitBreakerConfig, CircuitBreakerLayer, CircuitState};
///
/// let layer = CircuitBreakerLayer::new(CircuitBreakerConfig::default());
/// let handle = layer.handle();
/// assert_eq!(handle.state(None), Some(CircuitState::Closed));
/// handle.force_open(None);
/// assert_eq!(handle.state(None), Some(CircuitState::ForcedOpen));
/// handle.reset(None);
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer {
    shared: Arc<Shared>,
}

impl CircuitBreakerLayer {
    /// One breaker for every request.
    #[must_use]
    pub fn new(config: CircuitBreakerConfig) -> Self {
        let breaker = Arc::new(Breaker::new("all".to_owned(), config.clone(), next_seed()));
        Self {
            shared: Arc::new(Shared {
                config,
                scope: Scope::Global(breaker),
            }),
        }
    }

    /// One breaker per node, the node being the one `topology` says a request
    /// goes to. Requests with no single node (e.g. keys across cluster slots)
    /// pass without a breaker.
    pub fn per_node<T: Topology>(topology: T, config: CircuitBreakerConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                scope: Scope::PerNode {
                    topology: Arc::new(topology),
                    breakers: RwLock::new(HashMap::new()),
                },
            }),
        }
    }

    /// A handle to read and force the breakers' states.
    #[must_use]
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreaker<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::from_shared(inner, Arc::clone(&self.shared))
    }
}

enum Scope {
    Global(Arc<Breaker>),
    PerNode {
        topology: Arc<dyn Topology>,
        breakers: RwLock<HashMap<NodeAddr, Arc<Breaker>>>,
    },
}

/// What every clone of a layer shares.
pub(crate) struct Shared {
    config: CircuitBreakerConfig,
    scope: Scope,
}

/// A different jitter seed for every breaker, so breakers that open together
/// do not all probe at the same instant.
fn next_seed() -> u64 {
    static SEEDS: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    SEEDS
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scope = match &self.scope {
            Scope::Global(_) => "global",
            Scope::PerNode { .. } => "per_node",
        };
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("scope", &scope)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The breaker for `request`, if it has one.
    pub(crate) fn breaker_for(&self, request: &Request) -> Option<Arc<Breaker>> {
        match &self.scope {
            Scope::Global(breaker) => Some(Arc::clone(breaker)),
            Scope::PerNode { topology, breakers } => {
                let node = topology.node_for(request)?;
                Some(self.node_breaker(breakers, &node))
            }
        }
    }

    fn node_breaker(
        &self,
        breakers: &RwLock<HashMap<NodeAddr, Arc<Breaker>>>,
        node: &NodeAddr,
    ) -> Arc<Breaker> {
        if let Ok(map) = breakers.read()
            && let Some(breaker) = map.get(node)
        {
            return Arc::clone(breaker);
        }
        let mut map = breakers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(map.entry(node.clone()).or_insert_with(|| {
            Arc::new(Breaker::new(
                node.to_string(),
                self.config.clone(),
                next_seed(),
            ))
        }))
    }

    fn existing(&self, node: Option<&NodeAddr>) -> Option<Arc<Breaker>> {
        match (&self.scope, node) {
            (Scope::Global(breaker), _) => Some(Arc::clone(breaker)),
            (Scope::PerNode { breakers, .. }, Some(node)) => {
                Some(self.node_breaker(breakers, node))
            }
            (Scope::PerNode { .. }, None) => None,
        }
    }
}

/// Reads and forces breaker states, for operators and tests. `node` is
/// ignored by a global breaker; a per-node breaker needs it.
#[derive(Debug, Clone)]
pub struct CircuitBreakerHandle {
    shared: Arc<Shared>,
}

impl CircuitBreakerHandle {
    /// The state of the breaker (`None`: per-node scope without a node).
    #[must_use]
    pub fn state(&self, node: Option<&NodeAddr>) -> Option<CircuitState> {
        self.shared
            .existing(node)
            .map(|breaker| breaker.state(tokio::time::Instant::now()))
    }

    /// Holds the breaker open until [`reset`](Self::reset).
    pub fn force_open(&self, node: Option<&NodeAddr>) {
        if let Some(breaker) = self.shared.existing(node) {
            breaker.force(true);
        }
    }

    /// Holds the breaker closed (nothing trips) until [`reset`](Self::reset).
    pub fn force_closed(&self, node: Option<&NodeAddr>) {
        if let Some(breaker) = self.shared.existing(node) {
            breaker.force(false);
        }
    }

    /// Back to closed with an empty window, forcing lifted.
    pub fn reset(&self, node: Option<&NodeAddr>) {
        if let Some(breaker) = self.shared.existing(node) {
            breaker.reset(tokio::time::Instant::now());
        }
    }
}
