//! Event streams: the log from a position on, caught up from the store then live.
//!
//! The live side is the runtime's own broadcast of what it appends. Records can reach it out of
//! `seq` order (two runs append at once) or be lost to a slow reader; either shows as a gap in
//! `seq`, and a gap is filled from the log, which has every committed event in order. Anything
//! below the next expected `seq` is dropped, so nothing is seen twice.

use std::collections::VecDeque;
use std::sync::Arc;

use loop_core::{EventRecord, RunId, Seq};
use loop_store::EventStore;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::error::RuntimeError;
use crate::journal::blocking;

const PAGE: usize = 1024;

/// Every event after a position, of one run or of all, with no gap and no duplicate.
pub struct EventStream {
    store: Arc<dyn EventStore>,
    run: Option<RunId>,
    live: broadcast::Receiver<EventRecord>,
    buffer: VecDeque<EventRecord>,
    /// The next global seq to take (events of other runs are skipped, not yielded).
    next: Seq,
    catching_up: bool,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("run", &self.run)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl EventStream {
    pub(crate) fn new(
        store: Arc<dyn EventStore>,
        live: broadcast::Receiver<EventRecord>,
        run: Option<RunId>,
        after: Seq,
    ) -> EventStream {
        EventStream {
            store,
            run,
            live,
            buffer: VecDeque::new(),
            next: Seq(after.0 + 1),
            catching_up: true,
        }
    }

    /// The next event; `None` once the runtime is gone.
    pub async fn next(&mut self) -> Option<Result<EventRecord, RuntimeError>> {
        loop {
            while let Some(record) = self.buffer.pop_front() {
                self.next = Seq(record.seq.0 + 1);
                if self.run.is_none_or(|run| run == record.run_id) {
                    return Some(Ok(record));
                }
            }
            if self.catching_up {
                let store = Arc::clone(&self.store);
                let after = Seq(self.next.0 - 1);
                match blocking(move || store.read_all(after, PAGE)).await {
                    Ok(page) if page.is_empty() => self.catching_up = false,
                    Ok(page) => self.buffer.extend(page),
                    Err(error) => return Some(Err(error)),
                }
                continue;
            }
            match self.live.recv().await {
                Ok(record) if record.seq < self.next => {}
                Ok(record) if record.seq == self.next => self.buffer.push_back(record),
                Ok(_) | Err(RecvError::Lagged(_)) => self.catching_up = true,
                Err(RecvError::Closed) => return None,
            }
        }
    }
}
