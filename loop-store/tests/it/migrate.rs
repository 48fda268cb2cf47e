//! A log written by an earlier build opens, migrates and reads exactly as one written now.

use loop_core::event::{Phase, StepStarted};
use loop_core::projection::{RunView, StepView};
use loop_core::{EventRecord, Seq};
use loop_store::{EventStore, RunQuery, SqliteStore, StoreError, replay};

use crate::driver::{RunDriver, Script, T0};
use crate::rng::Rng;
use crate::{db_path, raw_connection, temp_store};

/// The schema at `user_version` 2, as released: run and step views stored as rows.
const SCHEMA_V2: &str = "CREATE TABLE events (
        seq      INTEGER PRIMARY KEY,
        run_id   TEXT    NOT NULL,
        version  INTEGER NOT NULL,
        type     TEXT    NOT NULL,
        ts_ms    INTEGER NOT NULL,
        schema   INTEGER NOT NULL,
        payload  TEXT    NOT NULL,
        UNIQUE (run_id, version)
    );
    CREATE TABLE runs (
        run_id         TEXT    PRIMARY KEY,
        status         TEXT    NOT NULL,
        workspace_root TEXT    NOT NULL,
        name           TEXT    NOT NULL,
        created_ms     INTEGER NOT NULL,
        updated_ms     INTEGER NOT NULL,
        version        INTEGER NOT NULL,
        last_seq       INTEGER NOT NULL,
        view           TEXT    NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX runs_by_created ON runs (created_ms, run_id);
    CREATE INDEX runs_by_status ON runs (status, created_ms);
    CREATE TABLE steps (
        step_id     TEXT    PRIMARY KEY,
        run_id      TEXT    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        started_seq INTEGER NOT NULL,
        view        TEXT    NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX steps_by_run ON steps (run_id, started_seq);
    ALTER TABLE runs ADD COLUMN run_branch TEXT;
    CREATE INDEX runs_by_name ON runs (name);
    CREATE INDEX runs_by_branch ON runs (run_branch);
    PRAGMA application_id = 1280266064;
    PRAGMA user_version = 2;";

/// Writes `records` into a fresh file of schema 2 the way the build of schema 2 stored them:
/// the events, every run's view and every step's view as rows.
fn write_v2_log(path: &std::path::Path, records: &[EventRecord]) {
    let conn = raw_connection(path);
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("switch to WAL");
    conn.execute_batch(SCHEMA_V2).expect("create schema 2");
    let tx = conn.unchecked_transaction().expect("begin");
    for record in records {
        tx.execute(
            "INSERT INTO events (seq, run_id, version, type, ts_ms, schema, payload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![
                record.seq.0 as i64,
                record.run_id.to_string(),
                record.version.0 as i64,
                record.event.event_type().as_str(),
                record.ts_ms,
                record.schema,
                record.event.payload_json(),
            ],
        )
        .expect("insert an event");
    }
    let mut run_ids: Vec<_> = records.iter().map(|r| r.run_id).collect();
    run_ids.sort();
    run_ids.dedup();
    for run_id in run_ids {
        let events: Vec<EventRecord> = records
            .iter()
            .filter(|r| r.run_id == run_id)
            .cloned()
            .collect();
        let view = RunView::fold(&events).expect("a created run");
        tx.execute(
            "INSERT INTO runs (run_id, status, workspace_root, name, created_ms, updated_ms,
                               version, last_seq, view, run_branch)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            rusqlite::params![
                run_id.to_string(),
                view.status.as_str(),
                view.workspace_root,
                view.name,
                view.created_ms,
                view.updated_ms,
                view.version.0 as i64,
                view.last_seq.0 as i64,
                serde_json::to_string(&view).expect("a view serializes"),
                view.worktree.run_branch,
            ],
        )
        .expect("insert a run row");
        for step in StepView::fold(&events) {
            let started = events
                .iter()
                .find(|r| StepView::started(r).is_some_and(|s| s.id == step.id))
                .expect("the step's start");
            tx.execute(
                "INSERT INTO steps (step_id, run_id, started_seq, view) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![
                    step.id.to_string(),
                    run_id.to_string(),
                    started.seq.0 as i64,
                    serde_json::to_string(&step).expect("a view serializes"),
                ],
            )
            .expect("insert a step row");
        }
    }
    tx.commit().expect("commit");
}

#[test]
fn a_log_of_schema_2_migrates_and_reads_as_its_fold() {
    // The events come from driven runs in a scratch store; the old file is written by hand.
    let (_scratch_dir, scratch) = temp_store();
    let mut rng = Rng::new(71);
    let mut runs: Vec<RunDriver> = (0..4).map(|_| RunDriver::fresh(&mut rng)).collect();
    for ts in 0..40 {
        let run = &mut runs[ts as usize % 4];
        run.advance(&scratch, &mut rng, T0 + ts, Script::Endless, 3)
            .expect("append")
            .expect("endless");
    }
    let records = scratch.read_all(Seq(0), usize::MAX).expect("read all");
    drop(scratch);

    let dir = tempfile::tempdir().expect("create a temp dir");
    let path = db_path(&dir);
    write_v2_log(&path, &records);

    let store = SqliteStore::open(&path).expect("open and migrate a log of schema 2");
    let raw = raw_connection(&path);
    let user_version: i64 = raw
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .expect("user_version");
    assert_eq!(user_version, 4);
    assert_eq!(store.read_all(Seq(0), usize::MAX).expect("read"), records);
    let mut steps = 0;
    for run in &runs {
        let events = store.read_run(run.id).expect("read run");
        assert_eq!(
            store.run_view(run.id).expect("view"),
            RunView::fold(&events)
        );
        assert_eq!(store.steps(run.id).expect("steps"), StepView::fold(&events));
        steps += StepView::fold(&events).len();
    }
    assert!(
        steps >= 4,
        "the runs should have started steps, did {steps}"
    );
    assert_eq!(
        store.list_runs(&RunQuery::default()).expect("list").len(),
        runs.len()
    );
    assert_eq!(replay(&store, None).expect("replay").differences, vec![]);

    // Appends go on where the old build stopped, and a step id it stored stays taken.
    let taken = store.steps(runs[0].id).expect("steps")[0].id;
    let other = RunDriver::resume(&store, runs[1].id);
    let start = StepStarted {
        step_id: taken,
        phase: Phase::Implementation,
        iteration: 1,
        attempt: 1,
        prompt_path: None,
        resumed: Default::default(),
        session_id: Default::default(),
        account: None,
    };
    let refused = store.append(other.id, other.version(), T0 + 100, vec![start.into()]);
    match refused {
        Err(StoreError::InvalidAppend { reason, .. }) => {
            assert!(reason.contains(&runs[0].id.to_string()), "{reason}");
        }
        other => panic!("expected InvalidAppend, got {other:?}"),
    }
    let mut run = RunDriver::resume(&store, runs[2].id);
    run.advance(&store, &mut rng, T0 + 101, Script::Endless, 3)
        .expect("append after the migration")
        .expect("endless");
    let events = store.read_run(run.id).expect("read run");
    assert_eq!(
        store.run_view(run.id).expect("view"),
        RunView::fold(&events)
    );
}
