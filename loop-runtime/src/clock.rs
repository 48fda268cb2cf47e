//! Time, as the runtime sees it: injectable, so usage-limit waits and timestamps can be tested.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, watch};

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
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<AtomicI64>,
    moved: Arc<Notify>,
    /// The times the tasks asleep on this clock wait for, so a test can see that a task is
    /// parked (and until when) instead of sleeping and hoping nothing happens.
    parked: Arc<watch::Sender<Vec<i64>>>,
}

impl Default for ManualClock {
    fn default() -> ManualClock {
        ManualClock::new(0)
    }
}

impl ManualClock {
    pub fn new(now_ms: i64) -> ManualClock {
        ManualClock {
            now: Arc::new(AtomicI64::new(now_ms)),
            moved: Arc::new(Notify::new()),
            parked: Arc::new(watch::Sender::new(Vec::new())),
        }
    }

    /// Waits until some task sleeps on this clock until `until_ms`: from then on, it does
    /// nothing before the clock is moved there.
    pub async fn parked_until(&self, until_ms: i64) {
        let mut parked = self.parked.subscribe();
        // The sender lives as long as `self`: the wait ends only when a sleeper appears.
        let _ = parked.wait_for(|times| times.contains(&until_ms)).await;
    }

    /// Waits until at least `count` tasks sleep on this clock until `until_ms` (several runs
    /// waiting for one reset).
    pub async fn parked_many(&self, until_ms: i64, count: usize) {
        let mut parked = self.parked.subscribe();
        let _ = parked
            .wait_for(|times| times.iter().filter(|t| **t == until_ms).count() >= count)
            .await;
    }

    /// When each task sleeping on this clock wakes, now (a test that drives a long run moves
    /// the clock to the earliest once the run has nothing else to do).
    pub fn parked(&self) -> Vec<i64> {
        self.parked.borrow().clone()
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
            let _parked = Parked::new(&self.parked, until_ms);
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

/// One sleeper's entry in [`ManualClock::parked`], removed when its sleep ends or is dropped.
struct Parked<'a> {
    parked: &'a watch::Sender<Vec<i64>>,
    until_ms: i64,
}

impl<'a> Parked<'a> {
    fn new(parked: &'a watch::Sender<Vec<i64>>, until_ms: i64) -> Parked<'a> {
        parked.send_modify(|times| times.push(until_ms));
        Parked { parked, until_ms }
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.parked.send_modify(|times| {
            if let Some(at) = times.iter().position(|t| *t == self.until_ms) {
                times.swap_remove(at);
            }
        });
    }
}
