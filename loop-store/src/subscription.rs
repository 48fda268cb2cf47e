//! Subscriptions: the log from a position on, caught up from storage and then live.
//!
//! The writer publishes each committed group to every subscriber's bounded channel without
//! ever waiting: a subscriber that falls behind loses live messages, notices the gap by `seq`
//! and reads the missing events back from the log. Because it also drops anything below the
//! next `seq` it expects, the stream has no gap and no duplicate whatever the timing of the
//! switch from catch-up to live.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loop_core::{EventRecord, Seq};

use crate::error::StoreError;

/// Committed groups of records a subscriber may hold unread before it has to catch up from the
/// log instead.
const LIVE_BUFFER: usize = 256;
/// Events read from the log per catch-up query.
const CATCH_UP_PAGE: usize = 1024;
/// How often a waiting subscriber looks at its lag flag, for the rare case where a group was
/// dropped and nothing has been committed since; and how often it tries a log it could not read.
const LAG_CHECK: Duration = Duration::from_millis(200);

type Batch = Arc<[EventRecord]>;

/// Reads committed events after a seq, at most a number of them.
pub(crate) type ReadAfter =
    Arc<dyn Fn(Seq, usize) -> Result<Vec<EventRecord>, StoreError> + Send + Sync>;

/// One subscriber as the writer sees it.
struct Live {
    sender: SyncSender<Batch>,
    /// Set when a group could not be delivered: the subscriber must read the log again.
    lagged: Arc<AtomicBool>,
}

/// The live side: every subscriber's channel.
#[derive(Default)]
pub(crate) struct Subscribers {
    senders: Mutex<Vec<Live>>,
    /// The highest seq handed out so far.
    published: AtomicU64,
}

impl Subscribers {
    /// Every event after `after`: those already in the log read with `read_after`, then live
    /// ones. Registered for live groups before anything is read, so whatever commits from now
    /// on reaches the channel and whatever committed before is in the log.
    pub(crate) fn subscribe(&self, read_after: ReadAfter, after: Seq) -> Subscription {
        Subscription::new(read_after, self.register(), after)
    }

    fn register(&self) -> (Receiver<Batch>, Arc<AtomicBool>) {
        let (sender, rx) = mpsc::sync_channel(LIVE_BUFFER);
        let lagged = Arc::new(AtomicBool::new(false));
        self.lock().push(Live {
            sender,
            lagged: Arc::clone(&lagged),
        });
        (rx, lagged)
    }

    /// Counts everything up to `seq` as handed out: what was in the log when the store opened
    /// is read from the log by a subscription, never published.
    pub(crate) fn published_up_to(&self, seq: Seq) {
        self.published.fetch_max(seq.0, Ordering::SeqCst);
    }

    /// The highest seq handed to subscribers so far.
    pub(crate) fn published(&self) -> Seq {
        Seq(self.published.load(Ordering::SeqCst))
    }

    /// Whether any subscription may be listening.
    pub(crate) fn any(&self) -> bool {
        !self.lock().is_empty()
    }

    /// Hands a committed group to every subscriber; never blocks.
    pub(crate) fn publish(&self, batch: Batch) {
        if let Some(last) = batch.last() {
            self.published.fetch_max(last.seq.0, Ordering::SeqCst);
        }
        self.lock()
            .retain(|live| match live.sender.try_send(Arc::clone(&batch)) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    live.lagged.store(true, Ordering::SeqCst);
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
    }

    /// Subscriptions not yet dropped. A dropped one would otherwise count until the next
    /// publish found its channel closed.
    pub(crate) fn count(&self) -> usize {
        let mut senders = self.lock();
        // The subscription holds the other reference to its lag flag.
        senders.retain(|live| Arc::strong_count(&live.lagged) > 1);
        senders.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Live>> {
        // A panic while holding this lock cannot leave the list inconsistent.
        self.senders.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every event after a position, in `seq` order, with no gap and no duplicate.
pub struct Subscription {
    read_after: ReadAfter,
    live: Receiver<Batch>,
    lagged: Arc<AtomicBool>,
    buffer: VecDeque<EventRecord>,
    /// The next seq this subscription will yield.
    next: Seq,
    /// Whether events may be waiting in the log that the live channel will not bring.
    catching_up: bool,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("next", &self.next)
            .field("catching_up", &self.catching_up)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// A subscription that reads the log with `read_after`; `live` is registered before the
    /// first read, so nothing committed after the catch-up read is missed.
    fn new(
        read_after: ReadAfter,
        (live, lagged): (Receiver<Batch>, Arc<AtomicBool>),
        after: Seq,
    ) -> Subscription {
        Subscription {
            read_after,
            live,
            lagged,
            buffer: VecDeque::new(),
            next: Seq(after.0.saturating_add(1)),
            catching_up: true,
        }
    }

    /// The seq of the next event this subscription yields.
    pub fn next_seq(&self) -> Seq {
        self.next
    }

    /// The next event, waiting for it as long as it takes. `Err(Closed)` once the store is gone.
    pub fn recv(&mut self) -> Result<EventRecord, StoreError> {
        loop {
            if let Some(record) = self.recv_timeout(Duration::from_secs(3600))? {
                return Ok(record);
            }
        }
    }

    /// The next event if one is committed now.
    pub fn try_recv(&mut self) -> Result<Option<EventRecord>, StoreError> {
        self.recv_timeout(Duration::ZERO)
    }

    /// The next event, waiting at most `timeout` for it. While the log cannot be read (its
    /// server unreachable for a while) this waits as for an event and yields `None` at the
    /// timeout; the store says why in `EventStore::reachability`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<EventRecord>, StoreError> {
        // A timeout too long to add to the clock (`Duration::MAX`) means no deadline.
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(record) = self.buffer.pop_front() {
                self.next = Seq(record.seq.0 + 1);
                return Ok(Some(record));
            }
            if self.catching_up {
                let page = match self.read_page() {
                    Ok(page) => page,
                    // The log cannot be read just now (its server restarting, say): wait for it
                    // as for an event, while the store reconnects by itself.
                    Err(error) if error.is_unavailable() => {
                        let left = deadline.map_or(Duration::MAX, |deadline| {
                            deadline.saturating_duration_since(Instant::now())
                        });
                        if left.is_zero() {
                            return Ok(None);
                        }
                        std::thread::sleep(left.min(LAG_CHECK));
                        continue;
                    }
                    Err(error) => return Err(error),
                };
                if page.is_empty() {
                    self.catching_up = false;
                } else {
                    self.buffer.extend(page);
                }
                continue;
            }
            if self.lagged.swap(false, Ordering::SeqCst) {
                self.catching_up = true;
                continue;
            }
            let left = deadline.map_or(Duration::MAX, |deadline| {
                deadline.saturating_duration_since(Instant::now())
            });
            let batch = match self.live.recv_timeout(left.min(LAG_CHECK)) {
                Ok(batch) => batch,
                Err(RecvTimeoutError::Timeout) if left > LAG_CHECK => continue,
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => return Err(StoreError::Closed),
            };
            self.take_live(&batch);
        }
    }

    /// The next page of the log. When an event in it is corrupt, the good events before it come
    /// first; the read after them reports the corrupt one.
    fn read_page(&self) -> Result<Vec<EventRecord>, StoreError> {
        let after = Seq(self.next.0 - 1);
        match (self.read_after)(after, CATCH_UP_PAGE) {
            Err(StoreError::Corrupt { seq, .. }) if seq > self.next => {
                (self.read_after)(after, (seq.0 - self.next.0) as usize)
            }
            result => result,
        }
    }

    fn take_live(&mut self, batch: &[EventRecord]) {
        let mut expected = self.next.0;
        for record in batch {
            if record.seq.0 < expected {
                continue; // already yielded from the log
            }
            if record.seq.0 > expected {
                // Live messages were dropped while we were slow: the log has them, in order.
                self.buffer.clear();
                self.catching_up = true;
                return;
            }
            self.buffer.push_back(record.clone());
            expected += 1;
        }
    }
}
