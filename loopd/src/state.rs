//! What every handler can reach.

use std::sync::Arc;

use loop_runtime::Runtime;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

#[derive(Clone, Debug)]
pub struct AppState {
    pub runtime: Runtime,
    pub metrics: Arc<Metrics>,
    /// Cancelled when the daemon stops: open streams end so the server can drain.
    pub shutdown: CancellationToken,
}

impl AppState {
    pub fn new(runtime: Runtime) -> AppState {
        AppState {
            runtime,
            metrics: Arc::default(),
            shutdown: CancellationToken::new(),
        }
    }
}
