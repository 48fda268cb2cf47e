//! A PostgreSQL rebuild makes the projections exactly the fold of the log whatever was stored
//! (the step index or runs' rows lost, changed by hand or invented), and leaves a sound
//! projection's rows as they were: it writes only what differs.
//!
//! The tables are read and damaged through a raw client, behind the store's back.

use std::collections::BTreeMap;

use loop_core::projection::RunView;
use loop_core::{Event, RunId, Seq, StepId};
use loop_store::{EventStore, PgStore, replay};

use crate::conformance::lifecycles;
use crate::rng::Rng;

/// A raw client on its own small runtime; every column read as text.
struct Raw {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Raw {
    fn connect(url: &str) -> Raw {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let client = runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(connection);
            client
        });
        Raw { runtime, client }
    }

    fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.runtime.block_on(async {
            let rows = self.client.query(sql, &[]).await.expect(sql);
            rows.iter()
                .map(|row| (0..row.len()).map(|i| row.get(i)).collect())
                .collect()
        })
    }

    fn execute(&self, sql: &str) {
        self.runtime
            .block_on(self.client.batch_execute(sql))
            .expect(sql);
    }

    /// The step index as stored: step id to run id.
    fn steps(&self) -> BTreeMap<String, String> {
        self.rows("SELECT step_id, run_id FROM steps_started")
            .into_iter()
            .map(|row| (row[0].clone().unwrap(), row[1].clone().unwrap()))
            .collect()
    }

    /// Every run's row, all columns as text, by run id.
    fn runs(&self) -> BTreeMap<String, Vec<Option<String>>> {
        self.rows(
            "SELECT run_id, status, workspace_root, name, created_ms::text, updated_ms::text,
                    version::text, last_seq::text, view, run_branch FROM runs",
        )
        .into_iter()
        .map(|row| (row[0].clone().unwrap(), row))
        .collect()
    }

    /// Each row's transaction id (`xmin`): a row written again gets a new one.
    fn writers(&self, table: &str, key: &str) -> BTreeMap<String, String> {
        self.rows(&format!("SELECT {key}, xmin::text FROM {table}"))
            .into_iter()
            .map(|row| (row[0].clone().unwrap(), row[1].clone().unwrap()))
            .collect()
    }
}

/// The step index the log implies: each step id to the run that started it first.
fn folded_steps(store: &dyn EventStore) -> BTreeMap<String, String> {
    let mut steps: BTreeMap<String, String> = BTreeMap::new();
    for record in store.read_all(Seq(0), usize::MAX).expect("read the log") {
        if let Event::StepStarted(started) = &record.event {
            steps
                .entry(started.step_id.to_string())
                .or_insert_with(|| record.run_id.to_string());
        }
    }
    steps
}

/// Each run's row as the fold of its events: the columns an append writes.
fn folded_runs(store: &dyn EventStore, ids: &[RunId]) -> BTreeMap<String, Vec<Option<String>>> {
    ids.iter()
        .map(|id| {
            let view = RunView::fold(&store.read_run(*id).expect("read run")).expect("created");
            let row = vec![
                Some(view.id.to_string()),
                Some(view.status.as_str().to_owned()),
                Some(view.workspace_root.clone()),
                Some(view.name.clone()),
                Some(view.created_ms.to_string()),
                Some(view.updated_ms.to_string()),
                Some(view.version.0.to_string()),
                Some(view.last_seq.0.to_string()),
                Some(serde_json::to_string(&view).expect("serialize")),
                view.worktree.run_branch.clone(),
            ];
            (view.id.to_string(), row)
        })
        .collect()
}

#[test]
fn a_rebuild_makes_damaged_projections_the_fold_and_leaves_sound_rows_alone() {
    let Some(server) = loop_testkit::postgres::Postgres::start("pg_rebuild") else {
        return;
    };
    let store = PgStore::connect(&server.url).expect("connect");
    let raw = Raw::connect(&server.url);
    let seed = Rng::seed_from_clock();
    let ids: Vec<RunId> = lifecycles(&store, seed, 12)
        .iter()
        .map(|run| run.id)
        .collect();
    let steps = folded_steps(&store);
    let runs = folded_runs(&store, &ids);
    assert!(steps.len() >= 12, "seed {seed}: the runs started steps");
    assert_eq!(raw.steps(), steps, "seed {seed}: as appended");
    assert_eq!(raw.runs(), runs, "seed {seed}: as appended");

    // A sound log: the rebuild finds nothing to write, every row keeps its writer.
    let (step_writers, run_writers) = (
        raw.writers("steps_started", "step_id"),
        raw.writers("runs", "run_id"),
    );
    let stats = store.rebuild_projections().expect("rebuild");
    assert_eq!(stats.runs, 12);
    assert_eq!(stats.events, store.last_seq().expect("last seq").0);
    assert_eq!(raw.writers("steps_started", "step_id"), step_writers);
    assert_eq!(raw.writers("runs", "run_id"), run_writers);

    // Damage of every kind: index rows lost, pointing at another run, invented, spelled in
    // capitals; run rows lost, changed in a column appends never change, changed in the view,
    // invented.
    let mut keys = steps.keys();
    let (lost, moved, shouted) = (
        keys.next().unwrap(),
        keys.next().unwrap(),
        keys.next().unwrap(),
    );
    let other_run = ids
        .iter()
        .find(|id| steps[moved] != id.to_string())
        .unwrap();
    let stranger = StepId::from_parts(7, [7; 10]);
    let run = |i: usize| ids[i].to_string();
    let (owner, lost_run, moved_run, changed_run, copied_run) =
        (run(0), run(1), run(2), run(3), run(4));
    let invented = RunId::from_parts(9, [9; 10]);
    raw.execute(&format!(
        "DELETE FROM steps_started WHERE step_id = '{lost}';
         UPDATE steps_started SET run_id = '{other_run}' WHERE step_id = '{moved}';
         UPDATE steps_started SET step_id = upper(step_id) WHERE step_id = '{shouted}';
         INSERT INTO steps_started VALUES ('{stranger}', '{owner}'), ('not a step id', 'nobody');
         DELETE FROM runs WHERE run_id = '{lost_run}';
         UPDATE runs SET workspace_root = '/elsewhere' WHERE run_id = '{moved_run}';
         UPDATE runs SET view = replace(view, '\"tasks_total\":', '\"tasks_total\":1')
             WHERE run_id = '{changed_run}';
         INSERT INTO runs SELECT '{invented}', status, workspace_root, name, created_ms,
             updated_ms, version, last_seq, view, run_branch FROM runs
             WHERE run_id = '{copied_run}';"
    ));
    assert_ne!(raw.steps(), steps);
    let damaged = raw.runs();
    for changed in [&moved_run, &changed_run] {
        assert_ne!(damaged[changed], runs[changed], "{changed} was changed");
    }
    let stats = store.rebuild_projections().expect("rebuild");
    assert_eq!(stats.runs, 12);
    assert_eq!(stats.steps as usize, {
        let mut count = 0;
        for record in store.read_all(Seq(0), usize::MAX).expect("read") {
            count += usize::from(matches!(record.event, Event::StepStarted(_)));
        }
        count
    });
    assert_eq!(raw.steps(), steps, "seed {seed}: after the rebuild");
    assert_eq!(raw.runs(), runs, "seed {seed}: after the rebuild");
    // Only the damaged rows were written again.
    let rewritten = |before: &BTreeMap<String, String>, after: BTreeMap<String, String>| {
        after
            .into_iter()
            .filter(|(key, writer)| before.get(key) != Some(writer))
            .map(|(key, _)| key)
            .collect::<Vec<_>>()
    };
    let mut expected = vec![lost.clone(), moved.clone(), shouted.clone()];
    expected.sort();
    assert_eq!(
        rewritten(&step_writers, raw.writers("steps_started", "step_id")),
        expected
    );
    let mut expected = vec![lost_run, moved_run, changed_run];
    expected.sort();
    assert_eq!(
        rewritten(&run_writers, raw.writers("runs", "run_id")),
        expected
    );

    // The index lost as a whole comes back whole, and the store works on from it.
    raw.execute("DELETE FROM steps_started; DELETE FROM runs;");
    store.rebuild_projections().expect("rebuild");
    assert_eq!(raw.steps(), steps, "seed {seed}: from nothing");
    assert_eq!(raw.runs(), runs, "seed {seed}: from nothing");
    let report = replay(&store, None).expect("replay");
    assert_eq!(report.differences, vec![], "seed {seed}");
}
