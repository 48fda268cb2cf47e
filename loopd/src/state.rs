//! What every handler can reach.

use std::sync::Arc;

use loop_runtime::{Node, Runtime};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

#[derive(Clone, Debug)]
pub struct AppState {
    pub runtime: Runtime,
    pub metrics: Arc<Metrics>,
    /// Cancelled when the daemon stops: open streams end so the server can drain.
    pub shutdown: CancellationToken,
    /// Who this daemon is (a cluster node when its log is shared).
    pub node: Arc<Node>,
    /// When it started, in Unix milliseconds.
    pub started_ms: i64,
    /// The daemon's token, which every node of a cluster shares: what this node shows another
    /// when it asks it for a step's output on behalf of a client.
    pub token: Option<Arc<str>>,
}

impl AppState {
    pub fn new(runtime: Runtime, node: Node) -> AppState {
        AppState {
            runtime,
            metrics: Arc::default(),
            shutdown: CancellationToken::new(),
            node: Arc::new(node),
            token: None,
            started_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_millis() as i64),
        }
    }
}
