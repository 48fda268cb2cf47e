//! Every agent call goes through the one account decision: a run of one account as a pool's,
//! its naming call and its postmortem's analyses as its steps' calls, and after a restart only
//! once the account book is read from the log again. The claude stub keeps a declared
//! account's calls and limit in the directory its `CLAUDE_CONFIG_DIR` names (see the stub).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use loop_core::event::{Event, PoolWait, PostmortemStatus};
use loop_core::projection::RunView;
use loop_core::{RunId, RunStatus};
use loop_runtime::clock::ManualClock;
use loop_runtime::{DeclaredAccount, Runtime};
use loop_store::SqliteStore;

use crate::support::{Scratch, finish, request_without_agent, scratch};

const T0: i64 = 1_790_000_000_000;

/// Account directories marked for the stub, each limited until its epoch second, and their
/// declarations.
fn limited_accounts(limits: &[(&str, i64)]) -> (Vec<tempfile::TempDir>, Vec<DeclaredAccount>) {
    let mut dirs = Vec::new();
    let mut declared = Vec::new();
    for (name, reset_s) in limits {
        let dir = tempfile::tempdir().expect("account dir");
        std::fs::write(dir.path().join("stub-account"), "").expect("marker");
        std::fs::write(dir.path().join("limited"), reset_s.to_string()).expect("limit");
        declared.push(DeclaredAccount {
            name: (*name).to_owned(),
            agent: "claude".to_owned(),
            env: BTreeMap::from([(
                "CLAUDE_CONFIG_DIR".to_owned(),
                dir.path().to_string_lossy().into_owned(),
            )]),
        });
        dirs.push(dir);
    }
    (dirs, declared)
}

fn open(scratch: &Scratch, clock: &ManualClock, declared: &[DeclaredAccount]) -> Runtime {
    let store = Arc::new(SqliteStore::open(scratch.db()).expect("open log"));
    Runtime::builder()
        .store(store)
        .data_dir(scratch.data_dir())
        .clock(Arc::new(clock.clone()))
        .max_concurrency(4)
        .accounts(declared.to_vec())
        .build()
        .expect("runtime")
}

/// A Claude run (the stub) with `pairs` over its configuration; its name is asked of the
/// agent (`run_naming_mode=haiku`) unless `pairs` says otherwise.
fn claude(scratch: &Scratch, pairs: &[(&str, &str)]) -> loop_runtime::RunRequest {
    let stub = loop_testkit::agents::path("claude_stub.sh");
    let mut request = request_without_agent(scratch, &[]);
    let base = [
        ("agent", "claude"),
        ("claude_bin", stub.to_str().expect("utf-8")),
        ("reviewer", "false"),
        ("run_naming_mode", "haiku"),
    ];
    for (key, value) in base.iter().chain(pairs) {
        request
            .config
            .insert((*key).to_owned(), (*value).to_owned());
    }
    request
}

/// The runs that called the account in `dir`, in order.
fn calls(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("calls"))
        .unwrap_or_default()
        .lines()
        .map(|line| line.split(' ').next().unwrap_or_default().to_owned())
        .collect()
}

fn run_dir(scratch: &Scratch, run_id: RunId) -> PathBuf {
    scratch
        .repo()
        .join("logs/loop")
        .join(format!("run-{run_id}"))
}

/// The run's view once it says it waits with `code`.
async fn waiting_with(runtime: &Runtime, run_id: RunId, code: &str) -> RunView {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let view = runtime.get(run_id).await.expect("view");
        if view.waiting.as_ref().is_some_and(|w| w.code == code) {
            return view;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "run {run_id} never waited with {code}: {view:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Cancels a run that made no call and checks that a postmortem asked of it (a run that
/// started no step has none of its own) asks no analysis either.
async fn canceled_without_analysis(runtime: &Runtime, scratch: &Scratch, run_id: RunId) {
    runtime.cancel(run_id).await.expect("cancel");
    let done = finish(runtime, run_id).await;
    assert_eq!(done.status, RunStatus::Canceled, "{done:?}");
    runtime
        .postmortem(run_id, None, false)
        .await
        .expect("a postmortem");
    let report = tokio::time::timeout(Duration::from_secs(60), runtime.wait_postmortem(run_id))
        .await
        .expect("the postmortem ends within a minute")
        .expect("wait for the postmortem");
    let end = runtime
        .events(run_id)
        .await
        .expect("events")
        .into_iter()
        .rev()
        .find_map(|r| match r.event {
            Event::PostmortemEnd(end) => Some(end),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no postmortem end: {report:?}"));
    assert_eq!(end.status, PostmortemStatus::Skipped, "{end:?}");
    let reason = end.reason.unwrap_or_default();
    assert!(reason.contains("held by a usage limit"), "{reason}");
    let analyses = run_dir(scratch, run_id).join("analysis-calls");
    assert!(
        !analyses.exists(),
        "an analysis called a held account: {}",
        std::fs::read_to_string(&analyses).unwrap_or_default()
    );
}

/// A run of one account goes through the one decision: while another run's limit holds the
/// account, a run submitted meanwhile makes no call of any kind — no naming call (it keeps
/// its spec slug), no step call, no analysis once it is canceled (before, its naming call went
/// to the held account unasked).
#[tokio::test]
async fn a_held_account_gets_no_call_of_any_kind_from_a_run_of_one_account() {
    let reset_s = T0 / 1000 + 3600;
    let (dirs, declared) = limited_accounts(&[("team", reset_s)]);
    let first_scratch = scratch(1);
    let second_scratch = scratch(1);
    let clock = ManualClock::new(T0);
    let runtime = open(&first_scratch, &clock, &declared);
    let first = runtime
        .submit(claude(
            &first_scratch,
            &[("account", "team"), ("run_naming_mode", "spec_slug")],
        ))
        .await
        .expect("submit");
    let met = waiting_with(&runtime, first.id, "usage_limit").await;
    let until = met.waiting.and_then(|w| w.until_ms).expect("a reset");
    let second = runtime
        .submit(claude(
            &second_scratch,
            &[("account", "team"), ("transient_retries", "3")],
        ))
        .await
        .expect("submit");
    let view = waiting_with(&runtime, second.id, "account_limit").await;
    assert_eq!(view.waiting.and_then(|w| w.until_ms), Some(until));
    assert_eq!(calls(dirs[0].path()), [first.id.to_string()]);
    let naming = run_dir(&second_scratch, second.id).join("naming-calls");
    assert!(
        !naming.exists(),
        "the naming call went to the held account: {}",
        std::fs::read_to_string(&naming).unwrap_or_default()
    );
    canceled_without_analysis(&runtime, &second_scratch, second.id).await;
    assert_eq!(calls(dirs[0].path()), [first.id.to_string()]);
    runtime.cancel(first.id).await.expect("cancel");
    runtime.shutdown().await;
}

/// After a restart the account book is read from the log before any call is decided: a pool
/// run held by its accounts' limits before the restart makes no call after it, a run submitted
/// after it neither (no naming call, no step call, no analysis once canceled), and each says
/// in its log that it waits for the earliest reset of the pool (`AGENT_WAITING` with
/// `pool_wait`). At the resets the held run goes on and completes.
#[tokio::test]
async fn after_a_restart_no_call_goes_to_a_held_account() {
    let base = T0 / 1000;
    let (dirs, declared) =
        limited_accounts(&[("work-1", base + 3600), ("work-2", base + 2 * 3600)]);
    let first_scratch = scratch(1);
    let second_scratch = scratch(1);
    let clock = ManualClock::new(T0);
    let pool = [("account_pool", "work-1 work-2")];
    let runtime = open(&first_scratch, &clock, &declared);
    let mut request = claude(&first_scratch, &pool);
    request
        .config
        .insert("run_naming_mode".to_owned(), "spec_slug".to_owned());
    let first = runtime.submit(request).await.expect("submit");
    // Both accounts meet the limit; the run waits for work-1's reset, the earlier.
    let earliest = (base + 3600) * 1000 + 60_000;
    clock.parked_until(earliest).await;
    let before: Vec<Vec<String>> = dirs.iter().map(|d| calls(d.path())).collect();
    assert_eq!(
        before,
        [[first.id.to_string()], [first.id.to_string()]],
        "one call on each account"
    );
    runtime.shutdown().await;
    drop(runtime);

    let runtime = open(&first_scratch, &clock, &declared);
    let second = runtime
        .submit(claude(&second_scratch, &pool))
        .await
        .expect("submit");
    for id in [first.id, second.id] {
        let view = waiting_with(&runtime, id, "account_limit").await;
        let waiting = view.waiting.expect("waiting");
        assert_eq!(waiting.until_ms, Some(earliest), "{waiting:?}");
        assert!(waiting.reason.contains("account work-1"), "{waiting:?}");
    }
    let after: Vec<Vec<String>> = dirs.iter().map(|d| calls(d.path())).collect();
    assert_eq!(after, before, "no call after the restart");
    assert!(
        !run_dir(&second_scratch, second.id)
            .join("naming-calls")
            .exists()
    );
    // The pool's wait is in each run's log, with the account and reset it waits for.
    for id in [first.id, second.id] {
        let waits: Vec<(Option<PoolWait>, Option<String>, i64)> = runtime
            .events(id)
            .await
            .expect("events")
            .into_iter()
            .filter_map(|r| match r.event {
                Event::AgentWaiting(wait) if wait.pool_wait.is_some() => {
                    Some((wait.pool_wait, wait.account, wait.until_ms))
                }
                _ => None,
            })
            .collect();
        assert!(
            waits.contains(&(Some(PoolWait::Limit), Some("work-1".to_owned()), earliest)),
            "run {id}: {waits:?}"
        );
    }
    canceled_without_analysis(&runtime, &second_scratch, second.id).await;

    // The resets: the held run goes on and completes.
    for dir in &dirs {
        std::fs::remove_file(dir.path().join("limited")).expect("reset");
    }
    clock.advance(Duration::from_secs(2 * 3600 + 120));
    let done = finish(&runtime, first.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    runtime.shutdown().await;
}
