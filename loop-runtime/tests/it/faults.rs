//! What breaks in practice: a log that refuses writes, a verification that hangs, an agent that
//! exits without reading its prompt.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use loop_core::event::{Event, ExitReason, Phase, StepStatus};
use loop_core::projection::{RunView, StepView};
use loop_core::{EventRecord, RunId, RunStatus, Seq, Version};
use loop_runtime::Runtime;
use loop_store::{EventStore, RebuildStats, RunQuery, SqliteStore, StoreError, Subscription};

use crate::support::{count, finish, request, runtime, scratch};

/// The real store, with appends that can be made to fail as a full disk would.
struct Flaky {
    store: SqliteStore,
    failing: Arc<AtomicBool>,
}

impl EventStore for Flaky {
    fn append(
        &self,
        run_id: RunId,
        expected: Version,
        ts_ms: i64,
        events: Vec<Event>,
    ) -> Result<Vec<EventRecord>, StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Write {
                path: self.store.path().to_owned(),
                reason: "database or disk is full (injected)".to_owned(),
            });
        }
        self.store.append(run_id, expected, ts_ms, events)
    }
    fn read_run(&self, run_id: RunId) -> Result<Vec<EventRecord>, StoreError> {
        self.store.read_run(run_id)
    }
    fn read_all(&self, after: Seq, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        self.store.read_all(after, limit)
    }
    fn read_run_after(
        &self,
        run_id: RunId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.store.read_run_after(run_id, after, limit)
    }
    fn last_seq(&self) -> Result<Seq, StoreError> {
        self.store.last_seq()
    }
    fn subscribe(&self, after: Seq) -> Result<Subscription, StoreError> {
        self.store.subscribe(after)
    }
    fn run_view(&self, run_id: RunId) -> Result<Option<RunView>, StoreError> {
        self.store.run_view(run_id)
    }
    fn list_runs(&self, query: &RunQuery) -> Result<Vec<RunView>, StoreError> {
        self.store.list_runs(query)
    }
    fn find_runs(&self, reference: &str, limit: usize) -> Result<Vec<RunView>, StoreError> {
        self.store.find_runs(reference, limit)
    }
    fn steps(&self, run_id: RunId) -> Result<Vec<StepView>, StoreError> {
        self.store.steps(run_id)
    }
    fn rebuild_projections(&self) -> Result<RebuildStats, StoreError> {
        self.store.rebuild_projections()
    }
    fn beat(&self, node: &loop_store::NodeBeat) -> Result<(), StoreError> {
        self.store.beat(node)
    }
    fn leave(&self, node_id: &str) -> Result<(), StoreError> {
        self.store.leave(node_id)
    }
    fn nodes(&self) -> Result<Vec<loop_store::NodeSeen>, StoreError> {
        self.store.nodes()
    }
}

#[tokio::test]
async fn a_log_that_refuses_writes_mid_run_holds_the_run_visibly_and_it_goes_on_once_it_recovers() {
    let scratch = scratch(2);
    let failing = Arc::new(AtomicBool::new(false));
    let store = Flaky {
        store: SqliteStore::open(scratch.db()).expect("log"),
        failing: Arc::clone(&failing),
    };
    let runtime = Runtime::builder()
        .store(Arc::new(store))
        .data_dir(scratch.data_dir())
        .build()
        .expect("runtime");
    let run = runtime
        .submit(request(&scratch, "chatty.sh", &[("reviewer", "false")]))
        .await
        .expect("submit");
    // Fail the log while the first step runs.
    for _ in 0..200 {
        if runtime
            .get(run.id)
            .await
            .expect("get")
            .current_step
            .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    failing.store(true, Ordering::SeqCst);
    // The step ends while the log refuses its end: the run says why it does not move.
    let mut during = None;
    for _ in 0..500 {
        let view = runtime
            .get(run.id)
            .await
            .expect("reads work while writes fail");
        if view.waiting.is_some() {
            during = Some(view);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let during = during.expect("the run shows it waits for the log");
    assert_eq!(during.status, RunStatus::Running);
    let waiting = during.waiting.expect("waiting");
    assert_eq!(waiting.code, "store_unavailable");
    assert!(
        waiting.reason.contains("disk is full (injected)"),
        "{waiting:?}"
    );
    let trouble = runtime
        .store_trouble()
        .expect("the runtime knows the log refuses writes");
    assert!(trouble.reason.contains("disk is full"), "{trouble:?}");
    // A new run is refused at once, not queued into nowhere.
    let refused = runtime
        .submit(request(&scratch, "chatty.sh", &[("reviewer", "false")]))
        .await
        .expect_err("no new run while the log refuses writes");
    assert!(
        matches!(&refused, loop_runtime::RuntimeError::Store(e) if e.is_unavailable()),
        "{refused:?}"
    );

    failing.store(false, Ordering::SeqCst);
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    assert_eq!(done.waiting, None);
    assert_eq!(runtime.store_trouble(), None);
    // Nothing was lost or recorded twice: the log folds, one finish per step.
    let records = runtime.events(run.id).await.expect("events");
    let started = count(&records, |e| matches!(e, Event::StepStarted(_)));
    let finished = count(&records, |e| matches!(e, Event::StepFinished(_)));
    assert_eq!(started, finished);
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_hanging_verification_command_is_killed_at_its_timeout() {
    let scratch = scratch(1);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(request(
            &scratch,
            "one_task.sh",
            &[
                ("reviewer", "false"),
                ("verify_cmds", "sleep 300"),
                ("verify_timeout_sec", "1"),
                ("max_consecutive_verification_failures", "1"),
            ],
        ))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Failed);
    let records = runtime.events(run.id).await.expect("events");
    assert_eq!(
        count(
            &records,
            |e| matches!(e, Event::VerificationCommand(c) if c.exit_code.is_none())
        ),
        1
    );
    assert_eq!(
        count(
            &records,
            |e| matches!(e, Event::StepFinished(s) if s.phase == Phase::Verification && s.status == StepStatus::Failed)
        ),
        1
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn an_agent_that_exits_without_reading_a_large_prompt_does_not_break_the_run() {
    let scratch = scratch(1);
    // A 1 MiB prompt is more than a pipe holds: the write meets a closed pipe.
    std::fs::create_dir_all(scratch.repo().join(".loop")).expect("dir");
    std::fs::write(
        scratch.repo().join(".loop/prompt.txt"),
        "x".repeat(1024 * 1024),
    )
    .expect("prompt");
    let runtime = runtime(&scratch);
    let mut request = request(
        &scratch,
        "one_task.sh",
        &[("reviewer", "false"), ("iterations", "1")],
    );
    request
        .config
        .insert("agent_cmd".to_owned(), "true".to_owned());
    let run = runtime.submit(request).await.expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Failed);
    assert_eq!(done.exit_reason, Some(ExitReason::IterationsExhausted));
    runtime.shutdown().await;
}
