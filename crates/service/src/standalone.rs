//! The standalone backend: one server, one self-healing connection.

use std::sync::Arc;

use redis_resilience_core::{Error, ErrorKind, NodeAddr, Request, Response, Route, Sent, ServedBy};
use tokio::time::Instant;

use crate::connection::NodeConnection;

#[derive(Debug)]
pub(crate) struct Standalone {
    pub(crate) node: Arc<NodeConnection>,
}

impl Standalone {
    pub(crate) async fn call(
        &self,
        request: Request,
        deadline: Instant,
    ) -> Result<Response, Error> {
        let asking = match request.route() {
            Route::Auto => false,
            Route::Node(addr) | Route::Asking(addr) if addr != self.node.addr() => {
                return Err(Error::config(format!(
                    "no node {addr} behind this standalone service"
                )));
            }
            Route::Node(_) => false,
            Route::Asking(_) => true,
            Route::Replica(_) | _ => {
                return Err(Error::new(
                    ErrorKind::NoReplicaAvailable,
                    Sent::No,
                    "a standalone server has no replicas",
                ));
            }
        };
        let value = self.node.send(&request, asking, deadline).await?;
        Ok(Response::new(
            value,
            ServedBy::Primary(Some(self.node.addr().clone())),
        ))
    }

    pub(crate) fn addr(&self) -> &NodeAddr {
        self.node.addr()
    }
}
