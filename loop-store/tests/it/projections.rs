//! The projection tables: always a fresh fold of the log, listable newest first with filters and
//! a cursor, and rebuilt from the log when someone has damaged them; `replay` names the damage.

use std::collections::BTreeSet;

use loop_core::event::{ExitReason, RunCompleted};
use loop_core::projection::{RunView, StepView};
use loop_core::{Command, RunId, RunStatus, Seq};
use loop_store::{Difference, EventStore, RunQuery, SqliteStore, replay};

use crate::driver::{RunDriver, Script, T0, run_created};
use crate::rng::Rng;
use crate::{db_path, raw_connection, temp_store};

/// Runs driven through their whole lives, interleaved.
fn lifecycles(store: &SqliteStore, seed: u64, runs: usize) -> Vec<RunDriver> {
    let mut rng = Rng::new(seed);
    let mut drivers: Vec<RunDriver> = (0..runs).map(|_| RunDriver::fresh(&mut rng)).collect();
    let mut over = vec![false; runs];
    let mut ts = T0;
    while over.iter().any(|o| !o) && ts < T0 + 400 {
        let pick = rng.below(runs as u64) as usize;
        if over[pick] {
            continue;
        }
        ts += 1;
        over[pick] = drivers[pick]
            .advance(store, &mut rng, ts, Script::Lifecycle, 3)
            .expect("append")
            .is_none();
    }
    drivers
}

fn assert_views_are_folds(store: &SqliteStore, runs: &[RunDriver]) {
    for run in runs {
        let records = store.read_run(run.id).expect("read run");
        assert_eq!(
            store.run_view(run.id).expect("run view"),
            RunView::fold(&records),
            "run {}",
            run.id
        );
        assert_eq!(
            store.steps(run.id).expect("steps"),
            StepView::fold(&records),
            "steps of run {}",
            run.id
        );
    }
}

#[test]
fn stored_run_and_step_views_equal_a_fresh_fold_of_each_run() {
    let (_dir, store) = temp_store();
    let runs = lifecycles(&store, 21, 8);
    assert_views_are_folds(&store, &runs);
    let steps: usize = runs
        .iter()
        .map(|r| store.steps(r.id).expect("steps").len())
        .sum();
    assert!(
        steps > 10,
        "the runs should have done some work, did {steps} steps"
    );
    let statuses: BTreeSet<_> = runs
        .iter()
        .map(|r| {
            store
                .run_view(r.id)
                .expect("view")
                .expect("run")
                .status
                .as_str()
        })
        .collect();
    assert!(statuses.len() > 1, "{statuses:?}");
    let report = replay(&store, None).expect("replay");
    assert_eq!(report.differences, vec![]);
    assert_eq!(report.runs, 8);
    assert_eq!(report.steps as usize, steps);
    assert_eq!(report.events, store.last_seq().expect("last seq").0);
}

/// Twelve runs in two workspaces, four statuses, created in pairs at the same millisecond.
fn listed_runs(store: &SqliteStore) -> Vec<RunView> {
    let mut rng = Rng::new(31);
    for i in 0..12u64 {
        let created_ms = T0 + (i / 2) as i64 * 1000;
        let workspace = if i % 3 == 0 { "/work/b" } else { "/work/a" };
        let mut run = RunDriver::with_id(RunId::from_parts(created_ms as u64, rng.entropy()));
        let mut commands = vec![Command::Create(run_created(&format!("run-{i}"), workspace))];
        match i % 4 {
            0 => {}
            1 => commands.push(Command::Start),
            2 => commands.extend([
                Command::Start,
                Command::Complete(RunCompleted {
                    exit_reason: ExitReason::CompletePlan,
                    completed_iteration: 1,
                }),
            ]),
            _ => commands.push(Command::Cancel {
                reason: None,
                at_ms: created_ms,
            }),
        }
        run.append(store, created_ms, commands).expect("append");
    }
    let mut all = store.list_runs(&RunQuery::default()).expect("list");
    all.sort_by_key(|view| std::cmp::Reverse((view.created_ms, view.id)));
    all
}

fn ids(views: &[RunView]) -> Vec<RunId> {
    views.iter().map(|v| v.id).collect()
}

#[test]
fn list_runs_filters_by_status_and_workspace_newest_first() {
    let (_dir, store) = temp_store();
    let expected = listed_runs(&store);
    assert_eq!(expected.len(), 12);
    assert_eq!(
        ids(&store.list_runs(&RunQuery::default()).expect("list")),
        ids(&expected),
        "newest first, ties by id"
    );
    for status in RunStatus::ALL {
        for workspace in [None, Some("/work/a"), Some("/work/b"), Some("/nowhere")] {
            let query = RunQuery {
                status: Some(status),
                workspace_root: workspace.map(str::to_owned),
                ..RunQuery::default()
            };
            let want: Vec<RunId> = expected
                .iter()
                .filter(|v| v.status == status)
                .filter(|v| workspace.is_none_or(|w| v.workspace_root == w))
                .map(|v| v.id)
                .collect();
            assert_eq!(
                ids(&store.list_runs(&query).expect("list")),
                want,
                "{query:?}"
            );
        }
    }
    let b_only = RunQuery {
        workspace_root: Some("/work/b".to_owned()),
        ..RunQuery::default()
    };
    assert_eq!(store.list_runs(&b_only).expect("list").len(), 4);
    for limit in [0, 1, 5, 12, 50] {
        let query = RunQuery {
            limit: Some(limit),
            ..RunQuery::default()
        };
        let listed = store.list_runs(&query).expect("list");
        assert_eq!(
            ids(&listed),
            ids(&expected[..limit.min(12)]),
            "limit {limit}"
        );
    }
}

#[test]
fn list_runs_pages_by_cursor_give_every_run_exactly_once() {
    let (_dir, store) = temp_store();
    let expected = listed_runs(&store);
    for status in [None, Some(RunStatus::Running), Some(RunStatus::Pending)] {
        for page_size in [1, 3, 5, 12] {
            let mut query = RunQuery {
                status,
                limit: Some(page_size),
                ..RunQuery::default()
            };
            let mut paged = Vec::new();
            loop {
                let page = store.list_runs(&query).expect("list a page");
                assert!(page.len() <= page_size);
                let Some(last) = page.last() else { break };
                query.before = Some(last.id);
                paged.extend(page);
                assert!(paged.len() <= 12, "paging does not end");
            }
            let want: Vec<RunId> = expected
                .iter()
                .filter(|v| status.is_none_or(|s| v.status == s))
                .map(|v| v.id)
                .collect();
            assert_eq!(ids(&paged), want, "status {status:?}, pages of {page_size}");
        }
    }
}

/// The run ids and step ids as the tables spell them.
fn text(id: impl ToString) -> String {
    id.to_string()
}

fn has(differences: &[Difference], run: RunId, what: &str) -> bool {
    differences
        .iter()
        .any(|d| d.run_id == Some(run) && d.what == what)
}

#[test]
fn rebuild_restores_damaged_projections_and_replay_names_the_damage_first() {
    let (dir, store) = temp_store();
    let runs = lifecycles(&store, 41, 6);
    let with_steps: Vec<&RunDriver> = runs
        .iter()
        .filter(|r| store.steps(r.id).expect("steps").len() >= 2)
        .collect();
    assert!(with_steps.len() >= 3, "need runs with steps to damage");
    // Steps have no rows to damage (they are folded from the log when read): only runs do.
    let (altered, deleted) = (with_steps[0].id, with_steps[2].id);
    let altered_status = store.run_view(altered).expect("view").expect("run").status;
    let fake_status = if altered_status == RunStatus::Canceled {
        "PAUSED"
    } else {
        "CANCELED"
    };
    let phantom = RunId::from_parts(T0 as u64, [0xAB; 10]);

    let raw = raw_connection(&db_path(&dir));
    raw.execute(
        "UPDATE runs SET status = ?1, view = json_set(view, '$.status', ?1) WHERE run_id = ?2",
        [fake_status, &text(altered)],
    )
    .expect("alter a run");
    raw.execute("DELETE FROM runs WHERE run_id = ?1", [text(deleted)])
        .expect("delete a run");
    raw.execute(
        "INSERT INTO runs (run_id, status, workspace_root, name, created_ms, updated_ms, version,
                           last_seq, view)
         SELECT ?1, status, workspace_root, name, created_ms, updated_ms, version, last_seq,
                json_set(view, '$.id', ?1)
         FROM runs WHERE run_id = ?2",
        [text(phantom), text(altered)],
    )
    .expect("add a run the log does not know");
    drop(raw);

    let before = replay(&store, None).expect("replay");
    let differences = &before.differences;
    assert!(has(differences, altered, "run.status"), "{differences:#?}");
    assert!(
        differences.iter().all(|d| !d.what.starts_with("step ")),
        "{differences:#?}"
    );
    assert!(has(differences, deleted, "run"), "{differences:#?}");
    assert!(has(differences, phantom, "run"), "{differences:#?}");
    let status_difference = differences
        .iter()
        .find(|d| d.run_id == Some(altered) && d.what == "run.status")
        .expect("status difference");
    assert_eq!(status_difference.stored, format!("\"{fake_status}\""));
    assert_eq!(
        status_difference.folded,
        format!("\"{}\"", altered_status.as_str())
    );

    let stats = store.rebuild_projections().expect("rebuild");
    let total_steps: usize = runs
        .iter()
        .map(|r| StepView::fold(&store.read_run(r.id).expect("read")).len())
        .sum();
    assert_eq!(stats.events, store.last_seq().expect("last seq").0);
    assert_eq!(stats.runs, runs.len() as u64);
    assert_eq!(stats.steps, total_steps as u64);
    assert_views_are_folds(&store, &runs);
    assert_eq!(store.run_view(phantom).expect("view"), None);
    assert_eq!(
        store.list_runs(&RunQuery::default()).expect("list").len(),
        runs.len()
    );
    assert_eq!(replay(&store, None).expect("replay").differences, vec![]);
    // A second rebuild finds nothing to change.
    assert_eq!(store.rebuild_projections().expect("rebuild again"), stats);
}

#[test]
fn an_append_to_a_run_whose_projection_row_is_gone_writes_it_back() {
    let (dir, store) = temp_store();
    let mut rng = Rng::new(51);
    let mut run = RunDriver::fresh(&mut rng);
    for i in 0..6 {
        run.advance(&store, &mut rng, T0 + i, Script::Endless, 2)
            .expect("append")
            .expect("endless");
    }
    let run_id = run.id;
    // Only the run's row: its steps stay (no cascade).
    let delete_row = || {
        let raw = raw_connection(&db_path(&dir));
        raw.pragma_update(None, "foreign_keys", false)
            .expect("foreign keys off");
        raw.execute("DELETE FROM runs WHERE run_id = ?1", [text(run_id)])
            .expect("delete the run's row");
    };
    // While the store has the run in memory, and after reopening, when it has to refold it.
    delete_row();
    run.advance(&store, &mut rng, T0 + 10, Script::Endless, 2)
        .expect("append")
        .expect("endless");
    assert_views_are_folds(&store, std::slice::from_ref(&run));
    drop(store);
    delete_row();
    let store = SqliteStore::open(db_path(&dir)).expect("reopen");
    run.advance(&store, &mut rng, T0 + 11, Script::Endless, 2)
        .expect("append")
        .expect("endless");
    let view = store.run_view(run.id).expect("view").expect("run");
    assert_eq!(
        Some(view),
        RunView::fold(&store.read_run(run.id).expect("read"))
    );
}

#[test]
fn replay_reports_a_gap_in_seq_and_an_event_the_run_did_not_allow() {
    let (dir, store) = temp_store();
    let mut rng = Rng::new(61);
    let mut a = RunDriver::fresh(&mut rng);
    let mut b = RunDriver::fresh(&mut rng);
    a.append(&store, T0, [Command::Create(run_created("a", "/w"))])
        .expect("create a");
    b.append(&store, T0 + 1, [Command::Create(run_created("b", "/w"))])
        .expect("create b");
    a.append(&store, T0 + 2, [Command::Start]).expect("start a");
    b.append(&store, T0 + 3, [Command::Start]).expect("start b");

    let raw = raw_connection(&db_path(&dir));
    // Run a's start (seq 3) disappears; run b's start (seq 4) becomes a completion it may not
    // have while PENDING.
    raw.execute("DELETE FROM events WHERE seq = 3", [])
        .expect("delete an event");
    raw.execute(
        "UPDATE events SET type = 'RUN_COMPLETED',
                payload = '{\"exit_reason\":\"complete_plan\",\"completed_iteration\":1}'
         WHERE seq = 4",
        [],
    )
    .expect("rewrite an event");
    drop(raw);

    let report = replay(&store, None).expect("replay");
    let gap = report
        .differences
        .iter()
        .find(|d| d.what == "log.seq")
        .expect("a seq gap");
    assert_eq!((gap.stored.as_str(), gap.folded.as_str()), ("4", "3"));
    assert!(has(&report.differences, b.id, "log.domain"), "{report:#?}");
    assert!(has(&report.differences, b.id, "run.status"), "{report:#?}");
    assert_eq!(report.events, 3);
    assert_eq!(store.read_all(Seq(0), 10).expect("read").len(), 3);
}
