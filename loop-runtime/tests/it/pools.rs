//! Account pools: a run's calls spread over the accounts the runtime declares, each with its
//! own credential directory. The claude stub keeps each account's calls and limit in the
//! directory its `CLAUDE_CONFIG_DIR` names (see the stub), as three subscriptions would.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use loop_core::event::Event;
use loop_core::{EventRecord, RunId, RunStatus};
use loop_runtime::clock::{Clock, ManualClock};
use loop_runtime::{DeclaredAccount, Runtime};
use loop_store::SqliteStore;

use crate::support::{Scratch, count, finish, request_without_agent, scratch};

const T0: i64 = 1_790_000_000_000;
const POOL: [&str; 3] = ["work-1", "work-2", "personal"];

/// Three account directories, marked for the stub, and their declarations.
fn three_accounts() -> (Vec<tempfile::TempDir>, Vec<DeclaredAccount>) {
    let dirs: Vec<tempfile::TempDir> = POOL
        .iter()
        .map(|_| tempfile::tempdir().expect("account dir"))
        .collect();
    let declared = POOL
        .iter()
        .zip(&dirs)
        .map(|(name, dir)| {
            std::fs::write(dir.path().join("stub-account"), "").expect("marker");
            DeclaredAccount {
                name: (*name).to_owned(),
                agent: "claude".to_owned(),
                env: BTreeMap::from([(
                    "CLAUDE_CONFIG_DIR".to_owned(),
                    dir.path().to_string_lossy().into_owned(),
                )]),
            }
        })
        .collect();
    (dirs, declared)
}

fn limit(dir: &Path, reset_s: i64) {
    std::fs::write(dir.join("limited"), reset_s.to_string()).expect("limit");
}

/// The runs that called the account in `dir`, in order.
fn calls(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("calls"))
        .unwrap_or_default()
        .lines()
        .map(|line| line.split(' ').next().unwrap_or_default().to_owned())
        .collect()
}

fn runtime(scratch: &Scratch, clock: &ManualClock, declared: Vec<DeclaredAccount>) -> Runtime {
    let store = Arc::new(SqliteStore::open(scratch.db()).expect("open log"));
    Runtime::builder()
        .store(store)
        .data_dir(scratch.data_dir())
        .clock(Arc::new(clock.clone()))
        .max_concurrency(4)
        .accounts(declared)
        .build()
        .expect("runtime")
}

fn request(scratch: &Scratch, account: (&str, &str)) -> loop_runtime::RunRequest {
    let stub = loop_testkit::agents::path("claude_stub.sh");
    let mut request = request_without_agent(scratch, &[]);
    for (key, value) in [
        ("agent", "claude"),
        ("claude_bin", stub.to_str().expect("utf-8")),
        ("reviewer", "false"),
        account,
    ] {
        request.config.insert(key.to_owned(), value.to_owned());
    }
    request
}

async fn events_of(runtime: &Runtime, run_id: RunId) -> Vec<EventRecord> {
    runtime.events(run_id).await.expect("events")
}

/// The first limit on account 1 sends the call to account 2 at once: the run completes while
/// the clock stands still, the step says which account served it. The same limit on a run
/// with account 1 alone holds it for the hour to the reset: the figures of the closing note.
#[tokio::test]
async fn a_limit_on_one_account_of_the_pool_fails_over_with_no_wait() {
    let (dirs, declared) = three_accounts();
    let reset_s = T0 / 1000 + 3600;
    limit(dirs[0].path(), reset_s);
    let pooled = scratch(2);
    let alone = scratch(2);
    let clock = ManualClock::new(T0);
    let runtime = runtime(&pooled, &clock, declared);
    let pool = POOL.join(" ");
    let run = runtime
        .submit(request(&pooled, ("account_pool", &pool)))
        .await
        .expect("submit");
    let single = runtime
        .submit(request(&alone, ("account", "work-1")))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    assert_eq!(clock.now_ms(), T0, "no wait");
    let records = events_of(&runtime, run.id).await;
    let failover = records
        .iter()
        .find_map(|r| match &r.event {
            Event::AgentRetry(retry) if retry.limited_until_ms.is_some() => Some(retry.clone()),
            _ => None,
        })
        .expect("a failover");
    assert_eq!(
        (
            failover.account.as_deref(),
            failover.next_account.as_deref()
        ),
        (Some("work-1"), Some("work-2"))
    );
    assert_eq!(failover.delay_ms, 0);
    let served: Vec<Option<String>> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::StepFinished(step) => Some(step.account.clone()),
            _ => None,
        })
        .collect();
    assert!(!served.is_empty());
    assert!(
        served.iter().all(|a| a.as_deref() == Some("work-2")),
        "{served:?}"
    );
    assert_eq!(
        calls(dirs[0].path())
            .iter()
            .filter(|r| **r == run.id.to_string())
            .count(),
        1
    );
    assert_eq!(count(&records, |e| matches!(e, Event::AgentWaiting(_))), 0);

    // The single-account run waits for the reset, then goes on.
    let until_ms = (reset_s + 60) * 1000;
    clock.parked_until(until_ms).await;
    std::fs::remove_file(dirs[0].path().join("limited")).expect("reset");
    clock.advance(Duration::from_millis((until_ms - T0) as u64));
    let done = finish(&runtime, single.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let single_records = events_of(&runtime, single.id).await;
    let (pool_calls, pool_waited, pool_span) = figures(&records);
    let (single_calls, single_waited, single_span) = figures(&single_records);
    eprintln!(
        "failover figures (from the log): pooled run {pool_calls} calls, {pool_waited} ms waiting, \
         {pool_span} ms created to completed; single-account run {single_calls} calls, \
         {single_waited} ms waiting, {single_span} ms created to completed; saved by failover: \
         {} calls, {} ms waiting, {} ms to completion",
        single_calls as i64 - pool_calls as i64,
        single_waited - pool_waited,
        single_span - pool_span
    );
    assert_eq!((pool_waited, pool_span), (0, 0));
    assert_eq!(single_waited, 3_660_000);
    assert!(single_span >= single_waited);
    runtime.shutdown().await;
}

/// What a run's log says it cost in calls and time: its agent calls (implementation and
/// review steps finished, calls retried or failed over, limits met), the time its waits for a
/// reset held it, and the time from its creation to its end.
fn figures(records: &[EventRecord]) -> (usize, i64, i64) {
    let calls = count(records, |e| match e {
        Event::StepFinished(step) => matches!(
            step.phase,
            loop_core::event::Phase::Implementation | loop_core::event::Phase::Review
        ),
        Event::AgentRetry(_) => true,
        Event::AgentWaiting(wait) => wait.step_id.is_some(),
        _ => false,
    });
    let waited = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::AgentWaiting(wait) => Some(wait.until_ms - r.ts_ms),
            _ => None,
        })
        .sum();
    let span = match (records.first(), records.last()) {
        (Some(first), Some(last)) => last.ts_ms - first.ts_ms,
        _ => 0,
    };
    (calls, waited, span)
}

/// With all three limited, the runs wait for the earliest reset (not their own last account's),
/// a run submitted meanwhile makes no call, and at that reset one run probes first.
#[tokio::test]
async fn with_every_account_limited_runs_wait_for_the_earliest_reset_and_one_probes() {
    let (dirs, declared) = three_accounts();
    let base = T0 / 1000;
    limit(dirs[0].path(), base + 3 * 3600);
    limit(dirs[1].path(), base + 3600);
    limit(dirs[2].path(), base + 2 * 3600);
    let first_scratch = scratch(1);
    let second_scratch = scratch(1);
    let clock = ManualClock::new(T0);
    let runtime = runtime(&first_scratch, &clock, declared);
    let pool = POOL.join(" ");
    let first = runtime
        .submit(request(&first_scratch, ("account_pool", &pool)))
        .await
        .expect("submit");
    // It tries each account once, then waits for work-2's reset, the earliest.
    let earliest = (base + 3600) * 1000 + 60_000;
    clock.parked_until(earliest).await;
    let second = runtime
        .submit(request(&second_scratch, ("account_pool", &pool)))
        .await
        .expect("submit");
    clock.parked_many(earliest, 2).await;
    let called: Vec<String> = dirs.iter().flat_map(|d| calls(d.path())).collect();
    assert_eq!(called.len(), 3, "one call per account: {called:?}");
    assert!(
        called.iter().all(|r| *r == first.id.to_string()),
        "{called:?}"
    );
    // Each run's log says it waits for the pool's earliest reset, work-2's (the first run's
    // last call met personal's, an hour later).
    for id in [first.id, second.id] {
        let waits: Vec<(String, i64)> = events_of(&runtime, id)
            .await
            .into_iter()
            .filter_map(|r| match r.event {
                Event::AgentWaiting(wait) if wait.pool_wait.is_some() => {
                    Some((wait.account.unwrap_or_default(), wait.until_ms))
                }
                _ => None,
            })
            .collect();
        assert_eq!(waits, [("work-2".to_owned(), earliest)], "run {id}");
        let view = runtime.get(id).await.expect("view");
        assert_eq!(
            view.waiting.map(|w| (w.code.as_str(), w.until_ms)),
            Some(("account_limit", Some(earliest)))
        );
    }
    // work-2 resets.
    std::fs::remove_file(dirs[1].path().join("limited")).expect("reset");
    clock.advance(Duration::from_secs(3660));
    for id in [first.id, second.id] {
        let done = finish(&runtime, id).await;
        assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    }
    // One probe first: the other run's first call on work-2 comes after the probe's answer.
    let after = calls(dirs[1].path());
    assert_eq!(after.len(), 3, "{after:?}");
    let probe: RunId = after[1].parse().expect("a run id");
    let other = if probe == first.id {
        second.id
    } else {
        first.id
    };
    // The account's calls and answers in order, as the stub saw them: after the reset the
    // probe starts and answers before the other run's call starts.
    let order: Vec<String> = std::fs::read_to_string(dirs[1].path().join("order"))
        .expect("order")
        .lines()
        .map(str::to_owned)
        .collect();
    let after_reset = &order[1..];
    assert_eq!(
        after_reset[..3],
        [
            format!("start {probe}"),
            format!("end {probe}"),
            format!("start {other}")
        ],
        "{order:?}"
    );
    runtime.shutdown().await;
}

/// A model's weekly limit holds that model's calls on the account and no other: a sonnet run
/// of the same account goes on while the opus run waits for the opus window's reset, after
/// making one call.
#[tokio::test]
async fn a_model_s_weekly_limit_holds_only_that_model() {
    let (dirs, declared) = three_accounts();
    let reset_s = T0 / 1000 + 3 * 86_400;
    std::fs::write(
        dirs[0].path().join("limited-seven_day_opus"),
        reset_s.to_string(),
    )
    .expect("limit");
    let opus_scratch = scratch(1);
    let sonnet_scratch = scratch(2);
    let clock = ManualClock::new(T0);
    let runtime = runtime(&opus_scratch, &clock, declared);
    let submit = |scratch: &Scratch, model: &'static str| {
        let mut request = request(scratch, ("account_pool", "work-1"));
        request.config.insert("model".to_owned(), model.to_owned());
        request
    };
    let opus = runtime
        .submit(submit(&opus_scratch, "opus"))
        .await
        .expect("submit");
    let sonnet = runtime
        .submit(submit(&sonnet_scratch, "sonnet"))
        .await
        .expect("submit");
    let done = finish(&runtime, sonnet.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    // The limit's reset, with the minute of margin every wait for a reset has.
    let until_ms = reset_s * 1000 + 60_000;
    clock.parked_until(until_ms).await;
    assert_eq!(clock.now_ms(), T0, "the sonnet run did not wait");
    let opus_calls = calls(dirs[0].path())
        .iter()
        .filter(|r| **r == opus.id.to_string())
        .count();
    assert_eq!(opus_calls, 1, "one opus call met the limit, then none");
    let waits: Vec<Option<String>> = events_of(&runtime, opus.id)
        .await
        .into_iter()
        .filter_map(|r| match r.event {
            Event::AgentWaiting(wait) => Some(wait.window),
            _ => None,
        })
        .collect();
    assert_eq!(waits, [Some("seven_day_opus".to_owned())]);
    std::fs::remove_file(dirs[0].path().join("limited-seven_day_opus")).expect("reset");
    clock.advance(Duration::from_millis((until_ms - T0) as u64));
    let done = finish(&runtime, opus.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    runtime.shutdown().await;
}

/// Pacing over a long run: three accounts whose five-hour windows each call takes a tenth of,
/// a run of 50 tasks keeping 20% free. It spreads its calls over the three, starts no
/// iteration that would cross 80% of a window, and waits for the resets instead (the clock
/// moved to each wait's end once the run has nothing else to do): no account's window is ever
/// seen past 80%, and every task gets done.
#[tokio::test]
async fn pacing_keeps_a_20_percent_reserve_on_every_account_over_a_long_run() {
    const TASKS: usize = 50;
    const PERIOD_S: i64 = 5 * 3600;
    let (dirs, declared) = three_accounts();
    let mut reset_s = T0 / 1000 + PERIOD_S;
    let set_windows = |reset_s: i64| {
        for dir in &dirs {
            std::fs::write(dir.path().join("window"), format!("0.1 {reset_s}")).expect("window");
            let _ = std::fs::remove_file(dir.path().join("used"));
        }
    };
    set_windows(reset_s);
    let scratch = scratch(TASKS);
    let clock = ManualClock::new(T0);
    let runtime = runtime(&scratch, &clock, declared);
    let pool = POOL.join(" ");
    let mut request = request(&scratch, ("account_pool", &pool));
    for (key, value) in [
        ("account_reserve_pct", "20"),
        ("iterations", "100"),
        ("max_cost_usd", "1000"),
    ] {
        request.config.insert(key.to_owned(), value.to_owned());
    }
    let run = runtime.submit(request).await.expect("submit");
    let mut seen_max = 0.0_f64;
    let mut resets = 0;
    let mut waiter = std::pin::pin!(runtime.wait(run.id));
    let started = std::time::Instant::now();
    let done = loop {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the run did not end: {:?}",
            runtime.get(run.id).await.map(|v| v.status)
        );
        tokio::select! {
            view = &mut waiter => break view.expect("wait"),
            () = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
        for dir in &dirs {
            let used: f64 = std::fs::read_to_string(dir.path().join("used"))
                .ok()
                .and_then(|u| u.trim().parse().ok())
                .unwrap_or(0.0);
            seen_max = seen_max.max(used);
        }
        // Nothing to do but wait: move the clock to the earliest wake, through a reset.
        let Some(wake) = clock.parked().into_iter().min() else {
            continue;
        };
        if wake >= reset_s * 1000 {
            reset_s += PERIOD_S;
            resets += 1;
            set_windows(reset_s);
        }
        let by = (wake - clock.now_ms()).max(0);
        clock.advance(Duration::from_millis(by as u64));
        assert!(resets < 20, "the run does not progress");
    };
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    assert!(seen_max <= 0.8 + 1e-9, "a window was used to {seen_max}");
    assert!(resets >= 1, "the run waited for a reset");
    let records = events_of(&runtime, run.id).await;
    let mut per_account = BTreeMap::<String, usize>::new();
    for record in &records {
        if let Event::StepFinished(step) = &record.event {
            *per_account
                .entry(step.account.clone().unwrap_or_default())
                .or_default() += 1;
            for seen in step.agent.iter().flat_map(|a| a.windows.iter()) {
                let used = seen.utilization.unwrap_or(0.0);
                assert!(used <= 0.8 + 1e-9, "{seen:?}");
            }
        }
    }
    assert_eq!(per_account.len(), 3, "{per_account:?}");
    eprintln!(
        "pacing: {TASKS} tasks, {resets} window resets waited for, calls per account {per_account:?}, highest window use {seen_max:.2}"
    );
    runtime.shutdown().await;
}

/// What a pool run's view says is what its pool holds it for, not its first account's state.
/// A run that failed over from a limited work-1 and is in its call on work-2 waits for
/// nothing (it was shown held by work-1's limit); a run whose pool is all limited waits for the
/// earliest reset, work-2's, and says so (it was shown the reset of the last account it tried,
/// an hour later).
#[tokio::test]
async fn a_pool_run_s_view_says_what_its_pool_holds_it_for() {
    let (dirs, declared) = three_accounts();
    let base = T0 / 1000;
    limit(dirs[0].path(), base + 3 * 3600);
    let busy_scratch = scratch(1);
    let held_scratch = scratch(1);
    // The busy run's first call meets work-1's limit; its second, on work-2, hangs.
    std::fs::write(busy_scratch.repo().join(".stub-plan"), "task\nhang\n").expect("stub plan");
    let clock = ManualClock::new(T0);
    let runtime = runtime(&busy_scratch, &clock, declared);
    let pool = POOL.join(" ");
    let busy = runtime
        .submit(request(&busy_scratch, ("account_pool", &pool)))
        .await
        .expect("submit");
    let started = std::time::Instant::now();
    while !calls(dirs[1].path()).contains(&busy.id.to_string()) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no call on work-2"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let view = runtime.get(busy.id).await.expect("view");
    assert_eq!(view.status, RunStatus::Running);
    assert_eq!(view.waiting, None, "in its call on work-2: {view:?}");

    limit(dirs[1].path(), base + 3600);
    limit(dirs[2].path(), base + 2 * 3600);
    let held = runtime
        .submit(request(&held_scratch, ("account_pool", &pool)))
        .await
        .expect("submit");
    let earliest = (base + 3600) * 1000 + 60_000;
    let view = loop {
        let view = runtime.get(held.id).await.expect("view");
        if view
            .waiting
            .as_ref()
            .is_some_and(|w| w.code.is_account_hold())
        {
            break view;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never held by its pool: {view:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let waiting = view.waiting.expect("waiting");
    assert_eq!(
        (waiting.code.as_str(), waiting.until_ms),
        ("account_limit", Some(earliest)),
        "{waiting:?}"
    );
    assert!(waiting.reason.contains("account work-2"), "{waiting:?}");
    assert_eq!(clock.now_ms(), T0);
    for id in [busy.id, held.id] {
        runtime.cancel(id).await.expect("cancel");
    }
    runtime.shutdown().await;
}
