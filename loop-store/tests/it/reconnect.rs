//! A PostgreSQL store across restarts of its server (`pg_ctl restart -m immediate`, then `stop
//! -m fast` and a start a moment later), with appenders and subscribers on two stores (two
//! nodes) working throughout: each store finds its way back by itself, says while the server is
//! gone that it cannot reach it and why, and the log, what appenders were told and what
//! subscribers saw all agree, with nothing lost or doubled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use loop_core::{EventRecord, RunState, Seq};
use loop_store::{EventStore, PgStore, Reachability, StoreError, Subscription};
use loop_testkit::postgres::{Postgres, Shutdown};

use crate::driver::{RunDriver, Script, T0};
use crate::rng::Rng;

/// How long a store may take to work again once its server is back. Far more than it needs
/// (about a second): a liveness bound on a loaded machine, not a performance bar.
const RECOVERY: Duration = Duration::from_secs(45);
/// Appends acknowledged between two faults.
const BETWEEN_FAULTS: usize = 15;

/// What the appenders were told: every acknowledged record.
type Acknowledged = Arc<Mutex<Vec<EventRecord>>>;

#[test]
fn a_restarted_server_loses_and_doubles_nothing_and_the_stores_recover_by_themselves() {
    let Some(server) = Postgres::start("reconnect::restart") else {
        return;
    };
    let seed = Rng::seed_from_clock();
    let nodes: [Arc<PgStore>; 2] =
        [(); 2].map(|()| Arc::new(PgStore::connect(&server.url).expect("connect")));
    let subscribers: Vec<_> = nodes
        .iter()
        .map(|node| follow(node.subscribe(Seq(0)).expect("subscribe")))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Acknowledged = Arc::default();
    let appenders: Vec<_> = (0..4u64)
        .map(|w| {
            let store = Arc::clone(&nodes[(w % 2) as usize]);
            let (stop, acknowledged) = (Arc::clone(&stop), Arc::clone(&acknowledged));
            thread::spawn(move || append_until(&*store, seed ^ (w + 1), &stop, &acknowledged))
        })
        .collect();
    let count = || acknowledged.lock().unwrap().len();
    let more = |what: &str| {
        let (from, started) = (count(), Instant::now());
        while count() < from + BETWEEN_FAULTS {
            assert!(
                started.elapsed() < RECOVERY,
                "seed {seed}: no append acknowledged {what} within {RECOVERY:?} ({} before)",
                from
            );
            thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{BETWEEN_FAULTS} appends {what} in {:?}", started.elapsed());
    };

    more("before any fault");
    server.restart(Shutdown::Immediate);
    more("after an immediate restart");

    server.stop(Shutdown::Fast);
    for node in &nodes {
        let reason = wait_for(&format!("seed {seed}: the store to notice"), || match node
            .reachability()
        {
            Reachability::Unreachable { reason, .. } => Some(reason),
            Reachability::Reachable => None,
        });
        assert!(!reason.is_empty(), "an unreachable store says why");
        match node.last_seq() {
            Err(error) => assert!(error.is_unavailable(), "{error}"),
            Ok(seq) => panic!("read seq {seq} from a stopped server"),
        }
    }
    thread::sleep(Duration::from_millis(1500));
    server.start_again();
    more("after a stop and a start");
    for node in &nodes {
        wait_for("the store to say it reaches the server again", || {
            (node.reachability() == Reachability::Reachable).then_some(())
        });
    }

    stop.store(true, Ordering::SeqCst);
    for appender in appenders {
        appender.join().expect("an appender");
    }
    let log = nodes[0].read_all(Seq(0), usize::MAX).expect("read the log");
    let last = log.last().map_or(0, |r| r.seq.0);
    let seqs: Vec<u64> = log.iter().map(|r| r.seq.0).collect();
    assert_eq!(
        seqs,
        (1..=last).collect::<Vec<_>>(),
        "seed {seed}: gap-free"
    );
    for record in acknowledged.lock().unwrap().iter() {
        assert_eq!(
            log.get(record.seq.0 as usize - 1),
            Some(record),
            "seed {seed}: an acknowledged record is in the log as acknowledged"
        );
    }
    // Each run's versions count from 1 with no gap: no append landed twice.
    let mut runs: std::collections::HashMap<_, RunState> = Default::default();
    for record in &log {
        let state = runs.entry(record.run_id).or_insert_with(RunState::new);
        assert_eq!(record.version, state.version().next(), "seed {seed}");
        state.apply(record).expect("the log's events are legal");
    }
    for (node, subscriber) in subscribers.into_iter().enumerate() {
        let seen = subscriber(Seq(last));
        assert_eq!(seen, log, "seed {seed}: the subscriber on node {node}");
    }
}

/// Appends random steps to one fresh run until `stop`, telling `acknowledged` what succeeded.
/// After a failure it reads the run again before the next append, as the runtime does: an
/// append cut off at its commit may or may not have landed, and the log says which.
fn append_until(store: &dyn EventStore, seed: u64, stop: &AtomicBool, acknowledged: &Acknowledged) {
    let mut rng = Rng::new(seed);
    let mut run = RunDriver::fresh(&mut rng);
    let mut ts = T0;
    while !stop.load(Ordering::SeqCst) {
        ts += 1;
        match run.advance(store, &mut rng, ts, Script::Endless, 3) {
            Ok(Some(records)) => acknowledged.lock().unwrap().extend(records),
            Ok(None) => unreachable!("an endless run never ends"),
            Err(error) => {
                assert!(
                    error.is_unavailable() || error.is_conflict(),
                    "seed {seed}: {error}"
                );
                thread::sleep(Duration::from_millis(50));
                run = loop {
                    match store.read_run(run.id) {
                        Ok(records) => {
                            let mut again = RunDriver::with_id(run.id);
                            again.accept(&records);
                            break again;
                        }
                        Err(error) if error.is_unavailable() => {
                            thread::sleep(Duration::from_millis(100));
                        }
                        Err(error) => panic!("seed {seed}: {error}"),
                    }
                };
            }
        }
    }
}

/// A thread that collects what `subscription` yields; the function it returns waits until it
/// has seen `last` and gives back everything it saw.
fn follow(mut subscription: Subscription) -> impl FnOnce(Seq) -> Vec<EventRecord> {
    let target = Arc::new(Mutex::new(None::<Seq>));
    let thread = {
        let target = Arc::clone(&target);
        thread::spawn(move || {
            let mut seen: Vec<EventRecord> = Vec::new();
            let mut deadline: Option<Instant> = None;
            loop {
                if let Some(last) = *target.lock().unwrap() {
                    if seen.last().map_or(Seq(0), |r| r.seq) >= last {
                        return seen;
                    }
                    let deadline = *deadline.get_or_insert_with(|| Instant::now() + RECOVERY);
                    assert!(
                        Instant::now() < deadline,
                        "a subscriber stuck after {:?}",
                        seen.last().map(|r| r.seq)
                    );
                }
                match subscription.recv_timeout(Duration::from_millis(50)) {
                    Ok(Some(record)) => seen.push(record),
                    Ok(None) => {}
                    // A subscription rides out the outage; anything else is a failure.
                    Err(error) => panic!("a subscription failed: {error}"),
                }
            }
        })
    };
    move |last| {
        *target.lock().unwrap() = Some(last);
        thread.join().expect("a subscriber")
    }
}

/// Polls `check` until it gives a value, failing after [`RECOVERY`].
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            started.elapsed() < RECOVERY,
            "waited {RECOVERY:?} for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A store that cannot reach its server fails at once rather than waiting for it, so that a
/// caller (the daemon's `/health`, its scheduler) can say so and claim nothing.
#[test]
fn an_unreachable_server_fails_calls_at_once_and_says_why() {
    let Some(server) = Postgres::start("reconnect::unreachable") else {
        return;
    };
    let store = PgStore::connect(&server.url).expect("connect");
    assert_eq!(store.reachability(), Reachability::Reachable);
    server.stop(Shutdown::Immediate);
    let error = loop {
        // The first call may find its connection gone and learn the server is down.
        match store.last_seq() {
            Err(error) => break error,
            Ok(_) => thread::sleep(Duration::from_millis(20)),
        }
    };
    assert!(error.is_unavailable(), "{error}");
    let reason = wait_for("the store to notice", || match store.reachability() {
        Reachability::Unreachable { reason, .. } => Some(reason),
        Reachability::Reachable => None,
    });
    // Refused without trying the server: the error is the store's own, not a driver's.
    let refused = store.read_all(Seq(0), 10).expect_err("the server is down");
    assert!(
        matches!(refused, StoreError::Unreachable { .. }),
        "{refused}"
    );
    assert!(refused.is_unavailable());
    assert!(refused.to_string().contains(&reason), "{refused}");
    server.start_again();
    wait_for("the store to come back", || {
        (store.reachability() == Reachability::Reachable).then_some(())
    });
    store.read_all(Seq(0), 10).expect("reads work again");
}
