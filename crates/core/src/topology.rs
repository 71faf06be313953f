//! [`Topology`]: the read-only view of the deployment a service exports, for
//! layers that keep state per node (a circuit breaker per node, replica choice).

use crate::request::Request;
use crate::route::NodeAddr;

/// What the service last saw of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NodeHealth {
    /// Connected and answering.
    Healthy,
    /// Marked failing (connection errors, `FAIL` in the cluster, `s_down` in Sentinel).
    Failing,
    /// Not known yet.
    Unknown,
}

/// A read-only view of the nodes behind a service.
///
/// Implemented by `RedisService` for standalone, Sentinel and Cluster
/// deployments. Must be cheap: layers call `node_for` on every request.
pub trait Topology: Send + Sync + 'static {
    /// The node a request would be sent to now, if known.
    fn node_for(&self, request: &Request) -> Option<NodeAddr>;

    /// The replicas of `node`.
    fn replicas_of(&self, node: &NodeAddr) -> Vec<NodeAddr>;

    /// The health of `node`.
    fn health(&self, node: &NodeAddr) -> NodeHealth;

    /// Increases whenever the topology changes (failover, new slot map), so a
    /// layer can drop state keyed by nodes that are gone.
    fn generation(&self) -> u64;
}
