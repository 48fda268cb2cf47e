//! Many appenders at once: the single writer commits them in groups without losing, reordering
//! or double-numbering anything, and without letting two writers of one run both win.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::thread;

use loop_core::event::WatchdogSignal;
use loop_core::{Command, EventRecord, RunId, Seq, Version};
use loop_store::{EventStore, SqliteStore, StoreError, replay};

use crate::driver::{RunDriver, Script, T0};
use crate::rng::Rng;
use crate::temp_store;

/// Every event in the log, checked to be numbered 1..=N with no gap.
pub fn read_gap_free(store: &SqliteStore) -> Vec<EventRecord> {
    let all = store.read_all(Seq(0), usize::MAX).expect("read the log");
    for (i, record) in all.iter().enumerate() {
        assert_eq!(record.seq, Seq(i as u64 + 1), "seq gap before {record:?}");
    }
    all
}

/// Each run's events, checked to be versioned 1..=n with no gap.
pub fn runs_contiguous(all: &[EventRecord]) -> BTreeMap<RunId, Vec<&EventRecord>> {
    let mut runs: BTreeMap<RunId, Vec<&EventRecord>> = BTreeMap::new();
    for record in all {
        runs.entry(record.run_id).or_default().push(record);
    }
    for (run, records) in &runs {
        for (i, record) in records.iter().enumerate() {
            assert_eq!(
                record.version,
                Version(i as u64 + 1),
                "version gap in run {run}"
            );
        }
    }
    runs
}

#[test]
fn sixteen_concurrent_appenders_get_gap_free_seqs_and_contiguous_versions() {
    const THREADS: u64 = 16;
    const APPENDS: usize = 200;
    let (_dir, store) = temp_store();
    let start = Arc::new(Barrier::new(THREADS as usize));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                let mut rng = Rng::new(t);
                let mut run = RunDriver::fresh(&mut rng);
                let mut returned = Vec::new();
                start.wait();
                for i in 0..APPENDS {
                    let records = run
                        .advance(&store, &mut rng, T0 + i as i64, Script::Endless, 3)
                        .expect("append")
                        .expect("an endless run always has a next command");
                    returned.extend(records);
                }
                (run.id, returned)
            })
        })
        .collect();
    let returned: Vec<(RunId, Vec<EventRecord>)> = workers
        .into_iter()
        .map(|w| w.join().expect("worker"))
        .collect();

    let all = read_gap_free(&store);
    let total: usize = returned.iter().map(|(_, records)| records.len()).sum();
    assert_eq!(all.len(), total);
    assert_eq!(store.last_seq().expect("last seq"), Seq(total as u64));
    let runs = runs_contiguous(&all);
    assert_eq!(runs.len(), THREADS as usize);
    for (run, records) in &returned {
        // What each appender was told is exactly what the log holds for its run.
        let stored: Vec<EventRecord> = runs[run].iter().map(|r| (*r).clone()).collect();
        assert_eq!(&stored, records, "run {run}");
        assert!(records.len() >= APPENDS);
    }
    let report = replay(&store, None).expect("replay");
    assert_eq!(report.differences, vec![]);
}

#[test]
fn two_appenders_racing_on_one_run_at_the_same_version_exactly_one_wins() {
    const ROUNDS: u64 = 60;
    let (_dir, store) = temp_store();
    let mut run = RunDriver::with_id(RunId::from_parts(T0 as u64, [1; 10]));
    run.append(
        &store,
        T0,
        [
            Command::Create(crate::driver::run_created("race", "/work/a")),
            Command::Start,
        ],
    )
    .expect("create and start");
    let run_id = run.id;
    let barrier = Arc::new(Barrier::new(2));
    let racers: Vec<_> = (0..2)
        .map(|racer| {
            let store = store.clone();
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let mut outcomes = Vec::new();
                for round in 0..ROUNDS {
                    // Each round's version is known to both: the run gains one event a round.
                    let expected = Version(2 + round);
                    let signal = WatchdogSignal {
                        iteration: round as u32,
                        signal: format!("racer-{racer}").into(),
                        detail: String::new(),
                    };
                    barrier.wait();
                    let outcome = store.append(run_id, expected, T0 + 1, vec![signal.into()]);
                    outcomes.push(match outcome {
                        Ok(records) => {
                            assert_eq!(records.len(), 1);
                            assert_eq!(records[0].version, expected.next());
                            true
                        }
                        Err(StoreError::Conflict {
                            expected: e,
                            actual,
                            ..
                        }) => {
                            assert_eq!((e, actual), (expected, expected.next()));
                            false
                        }
                        Err(other) => panic!("round {round}: {other}"),
                    });
                    barrier.wait();
                }
                outcomes
            })
        })
        .collect();
    let outcomes: Vec<Vec<bool>> = racers
        .into_iter()
        .map(|r| r.join().expect("racer"))
        .collect();
    for (round, (first, second)) in outcomes[0].iter().zip(&outcomes[1]).enumerate() {
        assert!(
            first != second,
            "round {round}: exactly one racer must win, got {first} and {second}"
        );
    }
    let all = read_gap_free(&store);
    assert_eq!(all.len() as u64, 2 + ROUNDS);
    runs_contiguous(&all);
    assert_eq!(
        store
            .run_view(run_id)
            .expect("view")
            .expect("a run")
            .version,
        Version(2 + ROUNDS)
    );
}
