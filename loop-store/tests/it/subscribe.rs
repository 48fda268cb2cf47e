//! Subscriptions: every event after a position, first from the log, then live, with no gap and
//! no duplicate, whatever the timing and however slow the reader.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use loop_core::{EventRecord, Seq};
use loop_store::{EventStore, SqliteStore, StoreError, Subscription};

use crate::driver::{RunDriver, Script, T0};
use crate::rng::Rng;
use crate::temp_store;

/// A long wait that still turns a hang into a failure.
const PATIENCE: Duration = Duration::from_secs(20);

fn append_some(store: &SqliteStore, run: &mut RunDriver, rng: &mut Rng, appends: usize) {
    for i in 0..appends {
        run.advance(store, rng, T0 + i as i64, Script::Endless, 3)
            .expect("append")
            .expect("endless");
    }
}

/// The next `n` events, failing instead of hanging.
fn take(sub: &mut Subscription, n: usize) -> Vec<EventRecord> {
    (0..n)
        .map(|i| {
            sub.recv_timeout(PATIENCE)
                .unwrap_or_else(|e| panic!("event {i} of {n}: {e}"))
                .unwrap_or_else(|| panic!("event {i} of {n} never came"))
        })
        .collect()
}

fn seqs(records: &[EventRecord]) -> Vec<u64> {
    records.iter().map(|r| r.seq.0).collect()
}

#[test]
fn a_subscription_yields_stored_events_first_then_live_ones() {
    let (_dir, store) = temp_store();
    let mut rng = Rng::new(5);
    let mut run = RunDriver::fresh(&mut rng);
    append_some(&store, &mut run, &mut rng, 4);
    let stored = store.read_all(Seq(0), usize::MAX).expect("read");

    let mut sub = store.subscribe(Seq(0)).expect("subscribe");
    let mut from_middle = store.subscribe(Seq(2)).expect("subscribe from seq 2");
    assert_eq!(take(&mut sub, stored.len()), stored);
    assert_eq!(sub.try_recv().expect("try_recv"), None, "caught up");

    // Appended while the subscriber waits.
    let writer = {
        let (store, mut run, mut rng) = (store.clone(), run.clone(), rng.clone());
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            let mut live = Vec::new();
            for i in 0..5 {
                live.extend(
                    run.advance(&store, &mut rng, T0 + 100 + i, Script::Endless, 2)
                        .expect("append")
                        .expect("endless"),
                );
            }
            live
        })
    };
    let first_live = sub.recv().expect("a live event");
    let live = writer.join().expect("writer");
    assert_eq!(first_live, live[0]);
    assert_eq!(take(&mut sub, live.len() - 1), live[1..]);
    assert_eq!(sub.next_seq(), Seq(live.last().expect("live").seq.0 + 1));

    let all = store.read_all(Seq(0), usize::MAX).expect("read");
    assert_eq!(take(&mut from_middle, all.len() - 2), all[2..]);
}

#[test]
fn subscribing_during_concurrent_appends_yields_every_later_seq_exactly_once() {
    const WRITERS: u64 = 4;
    const APPENDS: usize = 80;
    let seed = Rng::seed_from_clock();
    let mut rng = Rng::new(seed);
    for trial in 0..3 {
        let (_dir, store) = temp_store();
        let start = Arc::new(Barrier::new(WRITERS as usize + 1));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (store, start) = (store.clone(), Arc::clone(&start));
                let mut rng = Rng::new(seed ^ (w + 1) ^ (trial << 8));
                thread::spawn(move || {
                    let mut run = RunDriver::fresh(&mut rng);
                    start.wait();
                    append_some(&store, &mut run, &mut rng, APPENDS);
                })
            })
            .collect();
        start.wait();
        // Subscribe at a random moment, from a random position already committed.
        thread::sleep(Duration::from_millis(rng.below(60)));
        let committed = store.last_seq().expect("last seq").0;
        let after = rng.between(0, committed);
        let mut sub = store.subscribe(Seq(after)).expect("subscribe");

        let target = Arc::new(AtomicU64::new(0));
        let reader = {
            let target = Arc::clone(&target);
            thread::spawn(move || {
                let deadline = Instant::now() + PATIENCE;
                let mut got = Vec::new();
                loop {
                    let t = target.load(Ordering::SeqCst);
                    if t != 0 && got.last().is_some_and(|r: &EventRecord| r.seq.0 >= t) {
                        return got;
                    }
                    assert!(Instant::now() < deadline, "stuck after {:?}", got.last());
                    if let Some(record) = sub
                        .recv_timeout(Duration::from_millis(50))
                        .expect("subscription")
                    {
                        got.push(record);
                    }
                }
            })
        };
        for writer in writers {
            writer.join().expect("writer");
        }
        let last = store.last_seq().expect("last seq").0;
        target.store(last, Ordering::SeqCst);
        let got = reader.join().expect("reader");
        assert_eq!(
            seqs(&got),
            (after + 1..=last).collect::<Vec<_>>(),
            "seed {seed}, trial {trial}, after {after}"
        );
        assert_eq!(got, store.read_all(Seq(after), usize::MAX).expect("read"));
    }
}

#[test]
fn a_subscriber_that_overflows_its_live_buffer_still_gets_every_event_once_in_order() {
    let (_dir, store) = temp_store();
    let mut rng = Rng::new(9);
    let mut run = RunDriver::fresh(&mut rng);
    let mut sub = store.subscribe(Seq(0)).expect("subscribe");
    append_some(&store, &mut run, &mut rng, 1);
    let first = take(&mut sub, 1);
    while sub.try_recv().expect("try_recv").is_some() {}
    assert_eq!(sub.try_recv().expect("try_recv"), None, "live now");

    // Each sequential append is its own committed group: 320 of them overflow the 256 the
    // subscriber's live buffer holds while it reads nothing.
    for i in 0..320 {
        run.advance(&store, &mut rng, T0 + i, Script::Endless, 1)
            .expect("append")
            .expect("endless");
    }
    let mut got = first;
    let last = store.last_seq().expect("last seq").0;
    got.extend(take(&mut sub, (last - got.len() as u64) as usize - 100));
    // And more while it reads the rest.
    for i in 0..20 {
        run.advance(&store, &mut rng, T0 + 1000 + i, Script::Endless, 2)
            .expect("append")
            .expect("endless");
    }
    let last = store.last_seq().expect("last seq").0;
    got.extend(take(&mut sub, (last - got.len() as u64) as usize));
    assert_eq!(seqs(&got), (1..=last).collect::<Vec<_>>());
    assert_eq!(got, store.read_all(Seq(0), usize::MAX).expect("read"));
    assert_eq!(sub.try_recv().expect("try_recv"), None, "nothing twice");
}

#[test]
fn recv_timeout_returns_none_when_nothing_is_committed() {
    let (_dir, store) = temp_store();
    let mut rng = Rng::new(2);
    let mut run = RunDriver::fresh(&mut rng);
    append_some(&store, &mut run, &mut rng, 2);
    let mut sub = store
        .subscribe(store.last_seq().expect("last seq"))
        .expect("subscribe");
    let started = Instant::now();
    assert_eq!(
        sub.recv_timeout(Duration::from_millis(80)).expect("recv"),
        None
    );
    assert!(started.elapsed() >= Duration::from_millis(80));
    assert_eq!(sub.try_recv().expect("try_recv"), None);
    // A timeout too long to add to a clock reading just means no deadline.
    append_some(&store, &mut run, &mut rng, 1);
    assert!(sub.recv_timeout(Duration::MAX).expect("recv").is_some());
}

#[test]
fn a_subscription_after_the_largest_seq_yields_nothing_and_does_not_panic() {
    let (_dir, store) = temp_store();
    let mut rng = Rng::new(8);
    let mut run = RunDriver::fresh(&mut rng);
    append_some(&store, &mut run, &mut rng, 2);
    for after in [i64::MAX as u64, u64::MAX - 1, u64::MAX] {
        let mut sub = store.subscribe(Seq(after)).expect("subscribe");
        assert_eq!(sub.try_recv().expect("try_recv"), None, "after {after}");
        append_some(&store, &mut run, &mut rng, 1);
        assert_eq!(
            sub.recv_timeout(Duration::from_millis(20)).expect("recv"),
            None,
            "after {after}"
        );
    }
}

#[test]
fn after_the_store_is_dropped_recv_yields_what_reached_it_then_closed() {
    let (_dir, store) = temp_store();
    let mut rng = Rng::new(4);
    let mut run = RunDriver::fresh(&mut rng);
    append_some(&store, &mut run, &mut rng, 2);
    let mut sub = store.subscribe(Seq(0)).expect("subscribe");
    let mut never_read = store.subscribe(Seq(0)).expect("subscribe");
    let stored = store.read_all(Seq(0), usize::MAX).expect("read");
    take(&mut sub, stored.len());
    assert_eq!(sub.try_recv().expect("try_recv"), None, "live now");

    append_some(&store, &mut run, &mut rng, 3);
    let all = store.read_all(Seq(0), usize::MAX).expect("read");
    drop(store);

    // What was committed and handed to the subscription before the store closed still arrives.
    assert_eq!(
        take(&mut sub, all.len() - stored.len()),
        all[stored.len()..]
    );
    for _ in 0..2 {
        assert!(matches!(sub.recv(), Err(StoreError::Closed)));
        assert!(matches!(
            sub.recv_timeout(Duration::from_millis(10)),
            Err(StoreError::Closed)
        ));
    }
    assert!(matches!(never_read.recv(), Err(StoreError::Closed)));
}

#[test]
fn a_subscriber_waiting_in_recv_wakes_with_closed_when_the_store_is_dropped() {
    let (_dir, store) = temp_store();
    let mut sub = store.subscribe(Seq(0)).expect("subscribe");
    let (done, outcome) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let _ = done.send(sub.recv());
    });
    thread::sleep(Duration::from_millis(100));
    drop(store);
    let outcome = outcome
        .recv_timeout(Duration::from_secs(5))
        .expect("recv must not hang once the store is gone");
    assert!(matches!(outcome, Err(StoreError::Closed)), "{outcome:?}");
    waiter.join().expect("waiter");
}

#[test]
fn subscriber_count_counts_subscriptions_not_yet_dropped() {
    let (_dir, store) = temp_store();
    let kept = store.subscribe(Seq(0)).expect("subscribe");
    let dropped = store.subscribe(Seq(0)).expect("subscribe");
    assert_eq!(store.subscriber_count(), 2);
    drop(dropped);
    assert_eq!(store.subscriber_count(), 1);
    let mut rng = Rng::new(6);
    let mut run = RunDriver::fresh(&mut rng);
    append_some(&store, &mut run, &mut rng, 1);
    assert_eq!(store.subscriber_count(), 1);
    drop(kept);
    assert_eq!(store.subscriber_count(), 0);
}
