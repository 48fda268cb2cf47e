//! What survives closing the store, who may read its files, and opening one file more than once.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;

use loop_core::Seq;
use loop_store::{EventStore, SqliteStore, replay};

use crate::driver::{RunDriver, Script, T0};
use crate::group_commit::{read_gap_free, runs_contiguous};
use crate::rng::Rng;
use crate::{db_path, temp_store};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn sibling(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

#[test]
fn appended_events_are_there_after_the_store_is_dropped_and_reopened() {
    let (dir, store) = temp_store();
    let mut rng = Rng::new(7);
    let mut runs: Vec<RunDriver> = (0..3).map(|_| RunDriver::fresh(&mut rng)).collect();
    let mut returned = Vec::new();
    for i in 0..30 {
        let run = &mut runs[i % 3];
        let records = run
            .advance(&store, &mut rng, T0 + i as i64, Script::Endless, 3)
            .expect("append")
            .expect("endless");
        returned.extend(records);
    }
    let views: Vec<_> = runs
        .iter()
        .map(|run| store.run_view(run.id).expect("view"))
        .collect();
    drop(store);

    let store = SqliteStore::open(db_path(&dir)).expect("reopen");
    assert_eq!(read_gap_free(&store), returned);
    for (run, view) in runs.iter().zip(&views) {
        assert_eq!(&store.run_view(run.id).expect("view"), view);
    }
    // Appends carry on where the log left off, in seq and in each run's version.
    let last = returned.last().expect("appended").seq;
    let run = &mut runs[0];
    let records = run
        .advance(&store, &mut rng, T0 + 100, Script::Endless, 1)
        .expect("append after reopening")
        .expect("endless");
    assert_eq!(records[0].seq, Seq(last.0 + 1));
    runs_contiguous(&read_gap_free(&store));
    assert_eq!(replay(&store, None).expect("replay").differences, vec![]);
}

#[test]
fn the_database_and_its_wal_are_readable_by_their_owner_only() {
    let (dir, store) = temp_store();
    let mut rng = Rng::new(1);
    let mut run = RunDriver::fresh(&mut rng);
    run.advance(&store, &mut rng, T0, Script::Endless, 3)
        .expect("append")
        .expect("endless");
    let db = db_path(&dir);
    assert_eq!(mode(&db), 0o600, "{}", db.display());
    let wal = sibling(&db, "-wal");
    assert!(wal.exists(), "the log runs in WAL mode: {}", wal.display());
    for suffix in ["-wal", "-shm"] {
        let file = sibling(&db, suffix);
        if file.exists() {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    }
    drop(store);
    // Reopening an existing file keeps it owner-only too.
    let _store = SqliteStore::open(&db).expect("reopen");
    assert_eq!(mode(&db), 0o600);
}

#[test]
fn first_opens_racing_on_a_fresh_file_all_succeed() {
    const OPENERS: usize = 6;
    for attempt in 0..4 {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = Arc::new(db_path(&dir));
        let barrier = Arc::new(Barrier::new(OPENERS));
        let openers: Vec<_> = (0..OPENERS)
            .map(|_| {
                let (path, barrier) = (Arc::clone(&path), Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    SqliteStore::open(path.as_path()).map(|store| store.last_seq())
                })
            })
            .collect();
        for opener in openers {
            let opened = opener.join().expect("opener thread");
            assert!(
                matches!(opened, Ok(Ok(Seq(0)))),
                "attempt {attempt}: {opened:?}"
            );
        }
    }
}

#[test]
fn two_stores_on_one_file_append_without_reusing_a_seq_or_missing_a_version() {
    // `loopctl exec` or `loopctl replay` may open the daemon's log while the daemon has it open.
    let (dir, first) = temp_store();
    let second = SqliteStore::open(db_path(&dir)).expect("open a second store");
    let mut rng = Rng::new(3);
    let mut a = RunDriver::fresh(&mut rng);
    let mut b = RunDriver::fresh(&mut rng);
    for i in 0..20 {
        let (store, run) = if i % 2 == 0 {
            (&first, &mut a)
        } else {
            (&second, &mut b)
        };
        run.advance(store, &mut rng, T0 + i, Script::Endless, 2)
            .unwrap_or_else(|e| panic!("append {i}: {e}"))
            .expect("endless");
    }
    // Each store also sees the other's latest append of a run it has cached.
    let mut a_from_second = RunDriver::resume(&second, a.id);
    a_from_second
        .advance(&second, &mut rng, T0 + 100, Script::Endless, 1)
        .expect("the second store appends to a run the first one wrote")
        .expect("endless");
    a.state = a_from_second.state.clone();
    a.advance(&first, &mut rng, T0 + 101, Script::Endless, 1)
        .expect("the first store appends after the second one did")
        .expect("endless");

    for store in [&first, &second] {
        runs_contiguous(&read_gap_free(store));
        assert_eq!(replay(store, None).expect("replay").differences, vec![]);
    }
}
