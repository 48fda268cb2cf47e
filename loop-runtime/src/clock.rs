//! Time, as the runtime sees it: injectable, so usage-limit waits and timestamps can be tested.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use crate::agent::BoxFuture;

/// A source of Unix time in milliseconds that can also wait until a time.
pub trait Clock: Send + Sync + Debug {
    fn now_ms(&self) -> i64;
    /// Completes once `now_ms() >= until_ms`.
    fn sleep_until(&self, until_ms: i64) -> BoxFuture<'_, ()>;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }

    fn sleep_until(&self, until_ms: i64) -> BoxFuture<'_, ()> {
        let wait = (until_ms - self.now_ms()).max(0) as u64;
        Box::pin(tokio::time::sleep(Duration::from_millis(wait)))
    }
}

/// A clock that moves only when told to: for tests of waits and backoffs.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    now: Arc<AtomicI64>,
    moved: Arc<Notify>,
}

impl ManualClock {
    pub fn new(now_ms: i64) -> ManualClock {
        ManualClock {
            now: Arc::new(AtomicI64::new(now_ms)),
            moved: Arc::new(Notify::new()),
        }
    }

    /// Moves the clock forward and wakes every sleeper.
    pub fn advance(&self, by: Duration) {
        self.now.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
        self.moved.notify_waiters();
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }

    fn sleep_until(&self, until_ms: i64) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            loop {
                let moved = self.moved.notified();
                if self.now_ms() >= until_ms {
                    return;
                }
                moved.await;
            }
        })
    }
}
