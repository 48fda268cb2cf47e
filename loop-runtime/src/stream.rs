//! Event streams: the log from a position on, caught up from the store then live.
//!
//! The live side is the runtime's own broadcast of what it appends. Records can reach it out of
//! `seq` order (two runs append at once) or be lost to a slow reader; either shows as a gap, and
//! a gap is filled from the log, which has every committed event in order. Anything already
//! taken is dropped, so nothing is seen twice.
//!
//! - The stream of every run expects each global `seq` in turn: a live record past the next one
//!   means some were missed.
//! - A run's stream reads only that run's events from the log (its cost is the run's, not the
//!   log's), ignores other runs' live records, and expects the run's `version`s in turn.
//!
//! Pages are small, so a thousand streams catching up at once hold little. An event that does
//! not decode (written by a newer build, or damaged) is reported once, as an error naming its
//! seq, and the stream goes on after it.
//!
//! [`Streams`] is the subsystem that feeds them: an observer of the journal that broadcasts
//! what it is handed, and the one place streams are opened.

use std::collections::VecDeque;
use std::sync::Arc;

use loop_core::{EventRecord, RunId, Seq, Version};
use loop_store::StoreError;
use tokio::sync::Semaphore;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::error::RuntimeError;
use crate::journal::{Journal, Observer, Origin};

/// Events read from the log per catch-up query: small, since every open stream may hold one.
const PAGE: usize = 32;

/// Catch-up reads of event streams at once: as many as the store has reading connections.
const STREAM_READS: usize = 8;

/// The runtime's event streams: what they follow live, and how many catch up at once.
pub(crate) struct Streams {
    /// Every record this runtime appends, as it is appended.
    appended: broadcast::Sender<EventRecord>,
    /// In a cluster: every record of the log as this runtime learns of it, its own appends and
    /// other nodes' (fed by [`crate::cluster`]'s follower through the journal). Notifications
    /// keep to `appended`, so only the node that recorded an event notifies of it.
    log: Option<broadcast::Sender<EventRecord>>,
    /// Catch-up reads of streams running at once.
    reads: Arc<Semaphore>,
}

impl Streams {
    /// `cluster`: whether other nodes append to the log too (their records then reach the
    /// streams through [`Origin::Elsewhere`]).
    pub(crate) fn new(cluster: bool) -> Streams {
        Streams {
            appended: broadcast::channel(4096).0,
            log: cluster.then(|| broadcast::channel(4096).0),
            reads: Arc::new(Semaphore::new(STREAM_READS)),
        }
    }

    /// Records as this runtime appends them (possibly out of `seq` order across runs).
    pub(crate) fn appended(&self) -> broadcast::Receiver<EventRecord> {
        self.appended.subscribe()
    }

    /// Every event after `after`, of one run or of all, read through `journal`, then live.
    pub(crate) fn open(&self, journal: &Journal, run: Option<RunId>, after: Seq) -> EventStream {
        EventStream::new(
            journal.clone(),
            Arc::clone(&self.reads),
            self.follow_log(),
            run,
            after,
        )
    }

    /// What event streams follow live: every record of the log this runtime learns of (in a
    /// cluster, other nodes' too), else its own appends. Duplicates and gaps are the stream's
    /// to handle.
    fn follow_log(&self) -> broadcast::Receiver<EventRecord> {
        match &self.log {
            Some(log) => log.subscribe(),
            None => self.appended.subscribe(),
        }
    }
}

impl Observer for Streams {
    fn observe(&self, record: &EventRecord, origin: Origin) {
        // Nobody listening is fine.
        if origin == Origin::Here {
            let _ = self.appended.send(record.clone());
        }
        if let Some(log) = &self.log {
            let _ = log.send(record.clone());
        }
    }
}

/// Every event after a position, of one run or of all, with no gap and no duplicate.
pub struct EventStream {
    journal: Journal,
    /// Shared by every stream of the runtime: how many catch-up reads run at once. A burst of
    /// streams waits here instead of each taking a thread of the blocking pool.
    reads: Arc<Semaphore>,
    run: Option<RunId>,
    live: broadcast::Receiver<EventRecord>,
    buffer: VecDeque<EventRecord>,
    /// The seq of the last event taken (yielded, or skipped as undecodable).
    last: Seq,
    /// For a run's stream, the version expected next once one is known.
    next_version: Option<Version>,
    catching_up: bool,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("run", &self.run)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl EventStream {
    fn new(
        journal: Journal,
        reads: Arc<Semaphore>,
        live: broadcast::Receiver<EventRecord>,
        run: Option<RunId>,
        after: Seq,
    ) -> EventStream {
        EventStream {
            journal,
            reads,
            run,
            live,
            buffer: VecDeque::new(),
            last: after,
            next_version: None,
            catching_up: true,
        }
    }

    /// The next event; `None` once the runtime is gone. An error is reported once and the
    /// stream goes on: an event that does not decode is skipped after its error.
    pub async fn next(&mut self) -> Option<Result<EventRecord, RuntimeError>> {
        loop {
            if let Some(record) = self.buffer.pop_front() {
                self.last = record.seq;
                self.next_version = Some(record.version.next());
                return Some(Ok(record));
            }
            if self.catching_up {
                match self.read_page(PAGE).await {
                    Ok(page) if page.is_empty() => self.catching_up = false,
                    Ok(page) => self.buffer.extend(page),
                    // An event that does not decode: read the good ones before it one at a
                    // time; when it is the next one, report it and go on after it.
                    Err(error) if corrupt_seq(&error).is_some() => match self.read_page(1).await {
                        Ok(page) => self.buffer.extend(page),
                        Err(error) => {
                            if let Some(seq) = corrupt_seq(&error) {
                                self.last = seq;
                                self.next_version = None;
                            }
                            return Some(Err(error));
                        }
                    },
                    Err(error) => return Some(Err(error)),
                }
                continue;
            }
            match self.live.recv().await {
                Ok(record) => match self.judge(&record) {
                    Live::Take => self.buffer.push_back(record),
                    Live::Ignore => {}
                    Live::Gap => self.catching_up = true,
                },
                Err(RecvError::Lagged(_)) => self.catching_up = true,
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// What a live record means to this stream.
    fn judge(&self, record: &EventRecord) -> Live {
        if record.seq <= self.last {
            return Live::Ignore;
        }
        match self.run {
            None if record.seq.0 == self.last.0 + 1 => Live::Take,
            None => Live::Gap,
            Some(run) if record.run_id != run => Live::Ignore,
            Some(_) => match self.next_version {
                Some(next) if record.version > next => Live::Gap,
                _ => Live::Take,
            },
        }
    }

    /// Up to `limit` events of the stream after the last one taken, from the log.
    async fn read_page(&self, limit: usize) -> Result<Vec<EventRecord>, RuntimeError> {
        let _permit = self
            .reads
            .acquire()
            .await
            .map_err(|_| RuntimeError::Shutdown)?;
        let after = self.last;
        let run = self.run;
        self.journal
            .read(move |store| match run {
                Some(run) => store.read_run_after(run, after, limit),
                None => store.read_all(after, limit),
            })
            .await
    }
}

/// What a live record means to a stream.
enum Live {
    Take,
    /// Already taken, or another run's.
    Ignore,
    /// Records were missed: the log has them.
    Gap,
}

/// The seq of the event that does not decode, when that is the error.
fn corrupt_seq(error: &RuntimeError) -> Option<Seq> {
    match error {
        RuntimeError::Store(StoreError::Corrupt { seq, .. }) => Some(*seq),
        _ => None,
    }
}
