//! Pause requests as the log records them (`RUN_PAUSE_REQUESTED`), handed to the drivers: a
//! driver waiting with no agent call in flight (a usage limit, a backoff) pauses at once when
//! its run is asked to. An [`Observer`] of the journal, so a request recorded by another node
//! of a cluster reaches the driver too.

use loop_core::{Event, EventRecord, RunId};
use tokio::sync::broadcast;

use crate::journal::{Observer, Origin};

/// The runs asked to pause, as the requests are appended or learned.
pub(crate) struct PauseRequests {
    asked: broadcast::Sender<RunId>,
}

impl Default for PauseRequests {
    fn default() -> PauseRequests {
        PauseRequests {
            asked: broadcast::channel(256).0,
        }
    }
}

impl PauseRequests {
    /// Runs asked to pause from now on (a receiver that lags has missed some: look at the log).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<RunId> {
        self.asked.subscribe()
    }
}

impl Observer for PauseRequests {
    fn observe(&self, record: &EventRecord, _origin: Origin) {
        if matches!(record.event, Event::RunPauseRequested(_)) {
            // Nobody waiting is fine.
            let _ = self.asked.send(record.run_id);
        }
    }
}
