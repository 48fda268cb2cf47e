//! Appending: seq and version numbering, optimistic concurrency, and the store's own rules.

use loop_core::event::{RunStarted, StepFinished, StepStarted, StepStatus, WatchdogSignal};
use loop_core::{Command, Event, EventType, RunId, Seq, StepId, Version};
use loop_store::{EventStore, RunQuery, SqliteStore, StoreError};

use crate::driver::{RunDriver, T0, run_created};
use crate::temp_store;

fn create(store: &SqliteStore, id: u8, ts_ms: i64) -> RunDriver {
    let mut run = RunDriver::with_id(RunId::from_parts(T0 as u64, [id; 10]));
    run.append(
        store,
        ts_ms,
        [Command::Create(run_created("feature", "/work/a"))],
    )
    .expect("create the run");
    run
}

#[test]
fn appends_get_seqs_from_one_without_gap_and_versions_from_one_per_run() {
    let (_dir, store) = temp_store();
    let mut a = create(&store, 1, T0);
    let mut b = create(&store, 2, T0 + 1);
    let mut returned = Vec::new();
    returned.extend(store.read_all(Seq(0), 10).expect("read"));
    // Interleaved appends, one of them several events at once.
    returned.extend(a.append(&store, T0 + 2, [Command::Start]).expect("start a"));
    returned.extend(
        b.append(
            &store,
            T0 + 3,
            [
                Command::Start,
                Command::RecordWatchdogSignal(WatchdogSignal {
                    iteration: 1,
                    signal: "stalled".into(),
                    detail: String::new(),
                }),
            ],
        )
        .expect("start b"),
    );
    returned.extend(
        a.append(
            &store,
            T0 + 4,
            [Command::Cancel {
                reason: None,
                at_ms: T0 + 4,
            }],
        )
        .expect("cancel a"),
    );

    let seqs: Vec<u64> = returned.iter().map(|r| r.seq.0).collect();
    assert_eq!(seqs, (1..=6).collect::<Vec<_>>());
    for (run, expected) in [(a.id, vec![1, 2, 3]), (b.id, vec![1, 2, 3])] {
        let versions: Vec<u64> = returned
            .iter()
            .filter(|r| r.run_id == run)
            .map(|r| r.version.0)
            .collect();
        assert_eq!(versions, expected, "versions of run {run}");
    }
    // Every record comes back exactly as the append returned it.
    assert_eq!(store.read_all(Seq(0), 100).expect("read all"), returned);
    assert_eq!(store.last_seq().expect("last seq"), Seq(6));
    assert!(
        returned
            .iter()
            .all(|r| r.schema == loop_core::event::SCHEMA)
    );
    let b_records = store.read_run(b.id).expect("read b");
    assert!(b_records.iter().skip(1).all(|r| r.ts_ms == T0 + 3));
}

#[test]
fn a_stale_expected_version_is_a_conflict_and_writes_nothing() {
    let (_dir, store) = temp_store();
    let mut run = create(&store, 1, T0);
    run.append(&store, T0 + 1, [Command::Start]).expect("start");
    let before = store.read_all(Seq(0), 100).expect("read");
    let view_before = store.run_view(run.id).expect("view");

    let signal: Event = WatchdogSignal {
        iteration: 1,
        signal: "stalled".into(),
        detail: String::new(),
    }
    .into();
    for stale in [Version(0), Version(1), Version(3), Version(99)] {
        match store.append(run.id, stale, T0 + 2, vec![signal.clone()]) {
            Err(StoreError::Conflict {
                run_id,
                expected,
                actual,
            }) => {
                assert_eq!((run_id, expected, actual), (run.id, stale, Version(2)));
            }
            other => panic!("expected a conflict at {stale:?}, got {other:?}"),
        }
    }
    // A run that does not exist is at version 0.
    let unknown = RunId::from_parts(T0 as u64, [9; 10]);
    let conflict = store
        .append(unknown, Version(4), T0, vec![signal.clone()])
        .expect_err("no run at version 4");
    assert!(
        matches!(
            conflict,
            StoreError::Conflict {
                actual: Version(0),
                ..
            }
        ),
        "{conflict:?}"
    );
    assert!(conflict.is_conflict());

    assert_eq!(store.read_all(Seq(0), 100).expect("read"), before);
    assert_eq!(store.last_seq().expect("last seq"), Seq(2));
    assert_eq!(store.run_view(run.id).expect("view"), view_before);
    // The next append takes the very next seq: a refused append leaves no gap.
    let records = store
        .append(run.id, Version(2), T0 + 3, vec![signal])
        .expect("append at the right version");
    assert_eq!((records[0].seq, records[0].version), (Seq(3), Version(3)));
}

#[test]
fn a_runs_first_event_must_be_run_created() {
    let (_dir, store) = temp_store();
    let run = RunId::from_parts(T0 as u64, [1; 10]);
    let error = store
        .append(run, Version::NONE, T0, vec![RunStarted {}.into()])
        .expect_err("a run cannot start before it is created");
    match &error {
        StoreError::InvalidAppend { run_id, reason } => {
            assert_eq!(*run_id, run);
            assert!(reason.contains("RUN_CREATED"), "{reason}");
        }
        other => panic!("expected InvalidAppend, got {other:?}"),
    }
    assert!(error.to_string().contains(&run.to_string()), "{error}");
    assert_eq!(store.last_seq().expect("last seq"), Seq(0));
    assert_eq!(store.read_run(run).expect("read"), vec![]);
    assert_eq!(store.run_view(run).expect("view"), None);
    assert!(
        store
            .list_runs(&RunQuery::default())
            .expect("list")
            .is_empty()
    );
}

#[test]
fn run_created_is_refused_anywhere_but_first() {
    let (_dir, store) = temp_store();
    let run = create(&store, 1, T0);
    let again: Event = run_created("again", "/work/a").into();
    // As the next event, and later in one append that starts a fresh run.
    let error = store
        .append(run.id, Version(1), T0 + 1, vec![again.clone()])
        .expect_err("a second RUN_CREATED");
    assert!(
        matches!(error, StoreError::InvalidAppend { .. }),
        "{error:?}"
    );
    let fresh = RunId::from_parts(T0 as u64, [2; 10]);
    let error = store
        .append(fresh, Version::NONE, T0, vec![again.clone(), again])
        .expect_err("two RUN_CREATED");
    assert!(
        matches!(error, StoreError::InvalidAppend { .. }),
        "{error:?}"
    );
    assert_eq!(store.last_seq().expect("last seq"), Seq(1));
    assert_eq!(store.read_run(fresh).expect("read"), vec![]);
}

#[test]
fn an_empty_append_is_refused() {
    let (_dir, store) = temp_store();
    let run = create(&store, 1, T0);
    for (id, version) in [
        (run.id, Version(1)),
        (RunId::from_parts(1, [3; 10]), Version::NONE),
    ] {
        let error = store
            .append(id, version, T0, vec![])
            .expect_err("nothing to append");
        assert!(
            matches!(error, StoreError::InvalidAppend { .. }),
            "{error:?}"
        );
    }
    assert_eq!(store.last_seq().expect("last seq"), Seq(1));
    assert_eq!(store.read_run(run.id).expect("read").len(), 1);
}

#[test]
fn a_step_cost_that_json_cannot_hold_is_refused_and_the_run_stays_readable() {
    let (_dir, store) = temp_store();
    let mut run = create(&store, 1, T0);
    let step_id = StepId::from_parts(T0 as u64, [7; 10]);
    run.append(
        &store,
        T0 + 1,
        [
            Command::Start,
            Command::StartStep(StepStarted {
                step_id,
                phase: loop_core::event::Phase::Implementation,
                iteration: 1,
                attempt: 1,
                prompt_path: None,
                resumed: Default::default(),
                session_id: Default::default(),
                account: None,
            }),
        ],
    )
    .expect("start a step");
    for cost in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let finished: Event = StepFinished {
            step_id,
            phase: loop_core::event::Phase::Implementation,
            status: StepStatus::Succeeded,
            exit_code: Some(0),
            duration_ms: 10,
            output_path: None,
            output_bytes: 0,
            output_lines: 0,
            tokens: None,
            cost_usd: Some(cost),
            tasks_done: None,
            tasks_total: None,
            message: None,
            head_commit: None,
            plan_sha256: None,
            answer_sha256: None,
            agent: Default::default(),
            account: None,
            cost_estimated: false,
        }
        .into();
        let error = store
            .append(run.id, run.version(), T0 + 2, vec![finished])
            .expect_err("a cost JSON cannot represent");
        match &error {
            StoreError::InvalidAppend { reason, .. } => {
                assert!(reason.contains("cost_usd"), "{reason}");
                assert!(
                    reason.contains(EventType::StepFinished.as_str()),
                    "{reason}"
                );
            }
            other => panic!("expected InvalidAppend for {cost}, got {other:?}"),
        }
    }
    assert_eq!(store.last_seq().expect("last seq"), Seq(3));
    assert!(store.run_view(run.id).expect("view").is_some());
    assert_eq!(
        store.list_runs(&RunQuery::default()).expect("list").len(),
        1
    );
}

#[test]
fn a_step_id_another_run_already_started_is_refused() {
    let (_dir, store) = temp_store();
    let step_id = StepId::from_parts(T0 as u64, [7; 10]);
    let start = |step_id| {
        Command::StartStep(StepStarted {
            step_id,
            phase: loop_core::event::Phase::Implementation,
            iteration: 1,
            attempt: 1,
            prompt_path: None,
            resumed: Default::default(),
            session_id: Default::default(),
            account: None,
        })
    };
    let mut first = create(&store, 1, T0);
    first
        .append(&store, T0 + 1, [Command::Start, start(step_id)])
        .expect("start the step");
    let mut second = create(&store, 2, T0 + 2);
    second
        .append(&store, T0 + 3, [Command::Start])
        .expect("start the second run");
    let last = store.last_seq().expect("last seq");

    let error = second
        .append(&store, T0 + 4, [start(step_id)])
        .expect_err("the step id is taken");
    match &error {
        StoreError::InvalidAppend { run_id, reason } => {
            assert_eq!(*run_id, second.id);
            assert!(reason.contains(&step_id.to_string()), "{reason}");
            assert!(reason.contains(&first.id.to_string()), "{reason}");
        }
        other => panic!("expected InvalidAppend, got {other:?}"),
    }
    assert_eq!(store.last_seq().expect("last seq"), last);
    assert_eq!(store.steps(first.id).expect("steps")[0].run_id, first.id);
    assert_eq!(store.steps(second.id).expect("steps"), vec![]);
    assert_eq!(
        loop_store::replay(&store, None)
            .expect("replay")
            .differences,
        vec![]
    );
}
