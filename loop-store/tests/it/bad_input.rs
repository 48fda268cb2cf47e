//! Files and rows the store did not write: each is a clear error naming the file (and the
//! event), never a panic, and nothing already stored is changed by it.

use std::path::Path;

use loop_core::{RunId, Seq};
use loop_store::{EventStore, RunQuery, SqliteStore, StoreError, replay};

use crate::driver::{RunDriver, Script, T0};
use crate::rng::Rng;
use crate::{db_path, raw_connection, temp_store};

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn assert_names(error: &StoreError, path: &Path) {
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "{message:?} should name {}",
        path.display()
    );
}

#[test]
fn a_foreign_sqlite_database_is_not_ours_and_is_left_unchanged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("notes.db");
    {
        let conn = rusqlite::Connection::open(&path).expect("create a foreign database");
        conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');")
            .expect("fill it");
    }
    let before = read(&path);
    let error = SqliteStore::open(&path).expect_err("not a loop log");
    assert!(matches!(error, StoreError::NotOurs { .. }), "{error:?}");
    assert_names(&error, &path);
    assert_eq!(read(&path), before, "the foreign database was modified");
    assert!(!dir.path().join("notes.db-wal").exists());
    let conn = rusqlite::Connection::open(&path).expect("reopen");
    let body: String = conn
        .query_row("SELECT body FROM notes", [], |row| row.get(0))
        .expect("its data is still there");
    assert_eq!(body, "mine");
}

#[test]
fn a_file_that_is_not_sqlite_is_not_ours_and_is_left_unchanged() {
    let mut rng = Rng::new(13);
    let random: Vec<u8> = (0..8192).map(|_| rng.next_u64() as u8).collect();
    let cases: [(&str, Vec<u8>); 3] = [
        ("random bytes", random),
        ("a text file", b"just some notes\nnot a database\n".to_vec()),
        ("a json file", br#"{"seq": 1, "run_id": "x"}"#.repeat(200)),
    ];
    for (what, bytes) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("loop.db");
        std::fs::write(&path, &bytes).expect("write the file");
        let error = SqliteStore::open(&path).expect_err(what);
        assert!(
            matches!(error, StoreError::NotOurs { .. }),
            "{what}: {error:?}"
        );
        assert_names(&error, &path);
        assert_eq!(read(&path), bytes, "{what} was modified");
    }
}

#[test]
fn a_log_written_by_a_newer_schema_is_refused_naming_the_version() {
    let (dir, store) = temp_store();
    let mut rng = Rng::new(17);
    let mut run = RunDriver::fresh(&mut rng);
    run.advance(&store, &mut rng, T0, Script::Endless, 3)
        .expect("append")
        .expect("endless");
    let events = store.last_seq().expect("last seq");
    drop(store);
    let path = db_path(&dir);
    raw_connection(&path)
        .pragma_update(None, "user_version", 99)
        .expect("set a newer schema version");

    let error = SqliteStore::open(&path).expect_err("newer schema");
    match &error {
        StoreError::NewerSchema {
            path: named,
            found,
            supported,
        } => {
            assert_eq!((named.as_path(), *found), (path.as_path(), 99));
            assert!(*supported < 99);
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    assert_names(&error, &path);
    assert!(error.to_string().contains("99"), "{error}");

    let raw = raw_connection(&path);
    let version: i64 = raw
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .expect("user_version");
    let count: i64 = raw
        .query_row("SELECT count(*) FROM events", [], |row| row.get(0))
        .expect("count events");
    assert_eq!((version, count as u64), (99, events.0));
}

#[test]
fn a_log_with_a_negative_schema_version_is_refused_not_migrated() {
    let (dir, store) = temp_store();
    drop(store);
    let path = db_path(&dir);
    raw_connection(&path)
        .pragma_update(None, "user_version", -1)
        .expect("set a negative schema version");
    let error = SqliteStore::open(&path).expect_err("negative schema version");
    assert!(matches!(error, StoreError::NotOurs { .. }), "{error:?}");
    assert_names(&error, &path);
    assert!(error.to_string().contains("-1"), "{error}");
}

#[test]
fn a_path_that_cannot_hold_a_log_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    for path in [
        dir.path().join("missing/dir/loop.db"),
        dir.path().to_owned(),
    ] {
        let error = SqliteStore::open(&path).expect_err("cannot open");
        assert_names(&error, &path);
    }
}

/// A store with two runs and at least five events, and the run that holds seq 3.
fn store_with_events() -> (tempfile::TempDir, SqliteStore, RunId, RunId) {
    let (dir, store) = temp_store();
    let mut rng = Rng::new(19);
    let mut runs = [RunDriver::fresh(&mut rng), RunDriver::fresh(&mut rng)];
    for i in 0..6 {
        runs[i % 2]
            .advance(&store, &mut rng, T0 + i as i64, Script::Endless, 1)
            .expect("append")
            .expect("endless");
    }
    let third = store.read_all(Seq(2), 1).expect("read")[0].run_id;
    let other = if third == runs[0].id {
        runs[1].id
    } else {
        runs[0].id
    };
    (dir, store, third, other)
}

#[test]
fn a_corrupt_event_row_is_an_error_naming_the_file_and_seq_everywhere_it_is_read() {
    let cases = [
        ("payload", r#"{"bad":"#, "does not decode"),
        ("type", "NOT_AN_EVENT", "NOT_AN_EVENT"),
        ("run_id", "not-a-uuid", r#"run_id "not-a-uuid""#),
    ];
    for (column, value, detail) in cases {
        let (dir, store, run, other) = store_with_events();
        let path = db_path(&dir);
        let views_before = store.list_runs(&RunQuery::default()).expect("list");
        let other_before = store.read_run(other).expect("read");
        raw_connection(&path)
            .execute(
                &format!("UPDATE events SET {column} = ?1 WHERE seq = 3"),
                [value],
            )
            .expect("corrupt a row");

        let check = |what: &str, result: Result<(), StoreError>| {
            let error = result.expect_err(what);
            match &error {
                StoreError::Corrupt { path: p, seq, .. } => {
                    assert_eq!((p.as_path(), *seq), (path.as_path(), Seq(3)), "{what}");
                }
                other => panic!("{column}/{what}: expected Corrupt, got {other:?}"),
            }
            let message = error.to_string();
            assert_names(&error, &path);
            assert!(message.contains("seq 3"), "{column}/{what}: {message}");
            assert!(message.contains(detail), "{column}/{what}: {message}");
        };
        check("read_all", store.read_all(Seq(0), 100).map(drop));
        if column != "run_id" {
            check("read_run", store.read_run(run).map(drop));
        }
        check("replay", replay(&store, None).map(drop));
        check("rebuild", store.rebuild_projections().map(drop));
        let mut sub = store.subscribe(Seq(0)).expect("subscribe");
        sub.recv().expect("seq 1 is fine");
        sub.recv().expect("seq 2 is fine");
        check("subscribe", sub.recv().map(drop));

        // Nothing else is lost or changed: the failed rebuild left every projection as it was.
        assert_eq!(store.read_all(Seq(3), 100).expect("read past it").len(), 3);
        assert_eq!(
            store.read_run(other).expect("read the other run"),
            other_before
        );
        assert_eq!(
            store.list_runs(&RunQuery::default()).expect("list"),
            views_before
        );
        let stored: String = raw_connection(&path)
            .query_row(
                &format!("SELECT {column} FROM events WHERE seq = 3"),
                [],
                |row| row.get(0),
            )
            .expect("read the row back");
        assert_eq!(stored, value);
    }
}

#[test]
fn a_corrupt_projection_row_is_a_clear_error_and_rebuild_repairs_it() {
    let (dir, store, run, _) = store_with_events();
    let path = db_path(&dir);
    let view = store.run_view(run).expect("view");
    raw_connection(&path)
        .execute(
            "UPDATE runs SET view = '{\"id\": 12' WHERE run_id = ?1",
            [run.to_string()],
        )
        .expect("corrupt a projection");
    let error = store.run_view(run).expect_err("corrupt view");
    assert!(
        matches!(error, StoreError::CorruptProjection { .. }),
        "{error:?}"
    );
    assert_names(&error, &path);
    assert!(error.to_string().contains(&run.to_string()), "{error}");

    store.rebuild_projections().expect("rebuild");
    assert_eq!(store.run_view(run).expect("view"), view);
    assert_eq!(replay(&store, None).expect("replay").differences, vec![]);
}
