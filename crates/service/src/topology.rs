//! [`RedisTopology`]: the [`Topology`] view a [`RedisService`](crate::RedisService) exports.

use std::sync::Arc;

use redis_resilience_core::{NodeAddr, NodeHealth, Request, Route, Topology};

use crate::service::{Backend, Shared};

/// The nodes behind a [`RedisService`](crate::RedisService), for layers that
/// keep state per node. Cheap to clone; sees failovers as they happen.
#[derive(Debug, Clone)]
pub struct RedisTopology {
    shared: Arc<Shared>,
}

impl RedisTopology {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The current primary (the master), if one is known.
    #[must_use]
    pub fn primary(&self) -> Option<NodeAddr> {
        match &self.shared.backend {
            Backend::Standalone(standalone) => Some(standalone.addr().clone()),
            Backend::Sentinel(sentinel) => sentinel.master_addr(),
            Backend::Cluster(cluster) => cluster.primaries().into_iter().next(),
        }
    }

    /// Every primary: the master outside a cluster, each shard's primary in one.
    #[must_use]
    pub fn primaries(&self) -> Vec<NodeAddr> {
        match &self.shared.backend {
            Backend::Cluster(cluster) => cluster.primaries(),
            _ => self.primary().into_iter().collect(),
        }
    }
}

impl Topology for RedisTopology {
    fn node_for(&self, request: &Request) -> Option<NodeAddr> {
        match &self.shared.backend {
            Backend::Standalone(standalone) => match request.route() {
                Route::Node(addr) | Route::Asking(addr) => Some(addr.clone()),
                _ => Some(standalone.addr().clone()),
            },
            Backend::Sentinel(sentinel) => sentinel.node_for(request),
            Backend::Cluster(cluster) => cluster.node_for(request),
        }
    }

    fn replicas_of(&self, node: &NodeAddr) -> Vec<NodeAddr> {
        match &self.shared.backend {
            Backend::Standalone(_) => Vec::new(),
            Backend::Sentinel(sentinel) if sentinel.master_addr().as_ref() == Some(node) => {
                sentinel.replica_addrs()
            }
            Backend::Sentinel(_) => Vec::new(),
            Backend::Cluster(cluster) => cluster.replicas_of(node),
        }
    }

    fn health(&self, node: &NodeAddr) -> NodeHealth {
        match &self.shared.backend {
            Backend::Standalone(standalone) if standalone.addr() == node => {
                if standalone.node.is_connected() {
                    NodeHealth::Healthy
                } else {
                    NodeHealth::Failing
                }
            }
            Backend::Standalone(_) => NodeHealth::Unknown,
            Backend::Sentinel(sentinel) => sentinel.health(node),
            Backend::Cluster(cluster) => cluster.node_health(node),
        }
    }

    fn generation(&self) -> u64 {
        match &self.shared.backend {
            Backend::Standalone(_) => 0,
            Backend::Sentinel(sentinel) => sentinel.generation(),
            Backend::Cluster(cluster) => cluster.generation(),
        }
    }
}
