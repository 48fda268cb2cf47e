//! Reading the log back: one run, everything after a position in pages, and the last seq.

use loop_core::{EventRecord, RunId, Seq};
use loop_store::{EventStore, SqliteStore};

use crate::driver::{RunDriver, Script, T0};
use crate::rng::Rng;
use crate::temp_store;

/// Three runs with interleaved appends; returns them and every record in seq order.
fn interleaved(store: &SqliteStore, appends: usize) -> (Vec<RunDriver>, Vec<EventRecord>) {
    let mut rng = Rng::new(11);
    let mut runs: Vec<RunDriver> = (0..3).map(|_| RunDriver::fresh(&mut rng)).collect();
    let mut all = Vec::new();
    for i in 0..appends {
        let pick = rng.below(3) as usize;
        let records = runs[pick]
            .advance(store, &mut rng, T0 + i as i64, Script::Endless, 3)
            .expect("append")
            .expect("endless");
        all.extend(records);
    }
    (runs, all)
}

#[test]
fn read_run_returns_only_that_runs_events_in_version_order() {
    let (_dir, store) = temp_store();
    let (runs, all) = interleaved(&store, 40);
    for run in &runs {
        let expected: Vec<EventRecord> =
            all.iter().filter(|r| r.run_id == run.id).cloned().collect();
        assert_eq!(store.read_run(run.id).expect("read run"), expected);
    }
    let unknown = RunId::from_parts(T0 as u64, [0xEE; 10]);
    assert_eq!(store.read_run(unknown).expect("read unknown run"), vec![]);
}

#[test]
fn read_all_pages_through_the_log_after_any_seq() {
    let (_dir, store) = temp_store();
    let (_, all) = interleaved(&store, 40);
    let n = all.len() as u64;

    for limit in [1, 7, 64] {
        let mut paged = Vec::new();
        let mut after = Seq(0);
        loop {
            let page = store.read_all(after, limit).expect("read a page");
            assert!(page.len() <= limit);
            let Some(last) = page.last() else { break };
            after = last.seq;
            paged.extend(page);
        }
        assert_eq!(paged, all, "pages of {limit}");
    }
    for after in [0, 1, n / 2, n - 1] {
        let page = store.read_all(Seq(after), 5).expect("read");
        let expected: Vec<EventRecord> = all
            .iter()
            .filter(|r| r.seq.0 > after)
            .take(5)
            .cloned()
            .collect();
        assert_eq!(page, expected, "after {after}");
    }
    assert_eq!(store.read_all(Seq(n), 10).expect("read at the end"), vec![]);
    assert_eq!(
        store.read_all(Seq(n + 100), 10).expect("read past the end"),
        vec![]
    );
    assert_eq!(store.read_all(Seq(0), 0).expect("read nothing"), vec![]);
    // Positions past what SQLite's integers hold are still past the end, not before the start.
    for huge in [i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX] {
        assert_eq!(
            store.read_all(Seq(huge), 10).expect("read"),
            vec![],
            "after {huge}"
        );
    }
    assert_eq!(store.read_all(Seq(0), usize::MAX).expect("read all"), all);
}

#[test]
fn last_seq_is_zero_for_an_empty_log_then_the_last_committed_seq() {
    let (_dir, store) = temp_store();
    assert_eq!(store.last_seq().expect("last seq"), Seq(0));
    let (_, all) = interleaved(&store, 10);
    assert_eq!(
        store.last_seq().expect("last seq"),
        all.last().expect("appended").seq
    );
}
