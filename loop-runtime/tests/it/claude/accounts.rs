//! The account a run's calls count against, on the Claude stub: a usage limit, a budget, a
//! reserve or a turn of one run holds every run of its account, across restarts too.

use super::*;

/// The runs of `runtime` as it lists them, by id.
async fn view_of(runtime: &Runtime, run_id: RunId) -> loop_core::projection::RunView {
    runtime.get(run_id).await.expect("get")
}

/// The run's view once it says it waits with `code` (within a minute: a loaded machine takes
/// its time to reach the first call).
async fn waiting_with(
    runtime: &Runtime,
    run_id: RunId,
    code: &str,
) -> loop_core::projection::RunView {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let view = view_of(runtime, run_id).await;
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

/// Four runs on one account: the first meets the usage limit; the three submitted after it make
/// no call before the reset, and say why; a run on another account is not held. At the reset
/// one run calls first and the others follow once it succeeds; all four complete. Against the
/// behaviour before accounts (each run meets the limit on its own first call), three calls that
/// would have met the limit are not made.
#[tokio::test]
async fn a_usage_limit_holds_every_run_of_its_account_and_one_probes_at_the_reset() {
    let reset_s = T0 / 1000 + 3600;
    let account = tempfile::tempdir().expect("account dir");
    std::fs::write(account.path().join("limited"), reset_s.to_string()).expect("limit");
    let other = tempfile::tempdir().expect("other account dir");
    let scratches: Vec<Scratch> = (0..5).map(|_| scratch(1)).collect();
    for scratch in &scratches {
        stub_plan(scratch, &[]);
    }
    share_account(&scratches[..4], account.path());
    share_account(&scratches[4..], other.path());
    let clock = ManualClock::new(T0);
    let runtime = runtime_running(&scratches[0], &clock, 5);
    let request = |scratch: &Scratch, account: &str| {
        claude_request(
            scratch,
            &[("run_naming_mode", "spec_slug"), ("account", account)],
        )
    };
    let first = runtime
        .submit(request(&scratches[0], "team"))
        .await
        .expect("submit");
    let until = wait_for_waiting(&runtime, first.id).await;
    assert_eq!(until, reset_s * 1000 + 60_000);

    let mut held = Vec::new();
    for scratch in &scratches[1..4] {
        held.push(
            runtime
                .submit(request(scratch, "team"))
                .await
                .expect("submit")
                .id,
        );
    }
    let elsewhere = runtime
        .submit(request(&scratches[4], "solo"))
        .await
        .expect("submit");
    // The other account's run is not held: it completes while the clock stands still.
    let done = finish(&runtime, elsewhere.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    // The three held runs wait for the account, each saying so, with the shared reset time.
    for &id in &held {
        let view = waiting_with(&runtime, id, "account_limit").await;
        let waiting = view.waiting.expect("the run says why it waits");
        assert_eq!(
            (waiting.code.as_str(), waiting.until_ms),
            ("account_limit", Some(until))
        );
    }
    let calls = |dir: &std::path::Path| {
        std::fs::read_to_string(dir.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(|line| line.split(' ').next().unwrap_or_default().to_owned())
            .collect::<Vec<String>>()
    };
    assert_eq!(
        calls(account.path()),
        [first.id.to_string()],
        "no run of the account called after its first limit"
    );
    let accounts = runtime.accounts();
    let team = accounts
        .iter()
        .find(|a| a.account == "team")
        .expect("the team account");
    assert_eq!(team.state.limited_until_ms, Some(until));
    assert_eq!(team.runs.len(), 4);

    // The reset: the limit is gone, and the clock passes it.
    std::fs::remove_file(account.path().join("limited")).expect("reset");
    clock.advance(Duration::from_secs(3700));
    let mut all = vec![first.id];
    all.extend(&held);
    for &id in &all {
        let done = finish(&runtime, id).await;
        assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    }
    // One call first; every other run's first call after the reset comes after it succeeded.
    let after_reset = &calls(account.path())[1..];
    let probe = after_reset[0].clone();
    let probe_id: RunId = probe.parse().expect("a run id");
    let probe_done = events_of(&runtime, probe_id)
        .await
        .into_iter()
        .find(|r| {
            matches!(&r.event, Event::StepFinished(s) if s.phase == Phase::Implementation
            && r.ts_ms >= until)
        })
        .expect("the probe's call finished")
        .seq;
    for &id in all.iter().filter(|id| **id != probe_id) {
        let first_call = events_of(&runtime, id)
            .await
            .into_iter()
            .find(|r| {
                matches!(&r.event, Event::StepStarted(s) if s.phase == Phase::Implementation
                && r.ts_ms >= until)
            })
            .expect("a call after the reset")
            .seq;
        assert!(
            first_call > probe_done,
            "run {id} called (seq {first_call}) before the probe's answer (seq {probe_done})"
        );
    }
    let mut limits = 0;
    for &id in &all {
        limits += count(&events_of(&runtime, id).await, |e| {
            matches!(e, Event::AgentWaiting(_))
        });
    }
    assert_eq!(limits, 1, "one call met the limit, not one per run");
    eprintln!(
        "account calls: {} in all, {} before the reset (before accounts: 4 would have met the limit)",
        calls(account.path()).len(),
        1
    );
    runtime.shutdown().await;
}

/// A run sleeping before a retry while another run of its account meets the usage limit makes
/// no call when it wakes: it waits for the reset like every run of the account (issue 26,
/// defect 6: transient retries called the agent twice during a 3.5 min hold).
#[tokio::test]
async fn a_retry_makes_no_call_while_its_account_is_held() {
    let reset_s = T0 / 1000 + 3600;
    let account = tempfile::tempdir().expect("account dir");
    let scratches: Vec<Scratch> = (0..2).map(|_| scratch(1)).collect();
    stub_plan(&scratches[0], &["overloaded".to_owned()]);
    stub_plan(&scratches[1], &[]);
    share_account(&scratches, account.path());
    let clock = ManualClock::new(T0);
    let runtime = runtime_running(&scratches[0], &clock, 2);
    let request = |scratch: &Scratch| {
        claude_request(
            scratch,
            &[
                ("run_naming_mode", "spec_slug"),
                ("account", "team"),
                ("transient_backoff_sec", "10"),
            ],
        )
    };
    let retrying = runtime
        .submit(request(&scratches[0]))
        .await
        .expect("submit");
    // Its first call was overloaded: it sleeps until the retry.
    clock.parked_until(T0 + 10_000).await;
    // Meanwhile another run of the account meets the usage limit.
    std::fs::write(account.path().join("limited"), reset_s.to_string()).expect("limit");
    let limited = runtime
        .submit(request(&scratches[1]))
        .await
        .expect("submit");
    let until = wait_for_waiting(&runtime, limited.id).await;
    // The log shows the wait as soon as it is committed; the account book learns it a moment
    // later, when the appending driver resumes and hands the record to the journal's
    // observers. Time moved in between would make the retry decide on a book that cannot know
    // the limit yet (as if it were due a moment before the limit was met). The limited run
    // sleeps for the reset only after its record went through the observers: from then on
    // the book holds the account.
    clock.parked_until(until).await;
    // The retry's time comes: both runs end up waiting for the reset.
    clock.advance(Duration::from_secs(10));
    clock.parked_many(until, 2).await;
    let calls_of = |run: RunId| {
        std::fs::read_to_string(account.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .filter(|line| line.starts_with(&run.to_string()))
            .count()
    };
    assert_eq!(
        calls_of(retrying.id),
        1,
        "the retry made no call while the account was held"
    );
    std::fs::remove_file(account.path().join("limited")).expect("reset");
    clock.advance(Duration::from_secs(3700));
    for id in [retrying.id, limited.id] {
        let done = finish(&runtime, id).await;
        assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    }
    runtime.shutdown().await;
}

/// A step's retries are counted across a restart: a runtime opened again while a step backed off
/// goes on with the retries it spent, and the step fails once they are used up (issue 26,
/// defect 6: a restart gave the step fresh budgets).
#[tokio::test]
async fn a_restart_keeps_a_step_s_retry_budget() {
    let scratch = scratch(1);
    stub_plan(&scratch, &vec!["overloaded".to_owned(); 4]);
    let clock = ManualClock::new(T0);
    let open = || runtime_on(&scratch, &clock);
    let request = claude_request(
        &scratch,
        &[
            ("run_naming_mode", "spec_slug"),
            ("transient_retries", "2"),
            ("transient_backoff_sec", "10"),
        ],
    );
    let runtime = open();
    let run = runtime.submit(request).await.expect("submit");
    // Two overloaded calls, two retries spent; the runtime stops during the second pause.
    clock.parked_until(T0 + 10_000).await;
    clock.advance(Duration::from_secs(10));
    clock.parked_until(T0 + 30_000).await;
    runtime.shutdown().await;
    drop(runtime);
    // Opened again: the step runs again, its third overloaded call is one past the budget.
    let runtime = open();
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Failed, "{done:?}");
    let records = events_of(&runtime, run.id).await;
    let reason = records
        .iter()
        .find_map(|r| match &r.event {
            Event::RunFailed(failed) => Some(failed.reason.clone()),
            _ => None,
        })
        .expect("RUN_FAILED");
    assert!(reason.contains("after 2 retries"), "{reason}");
    assert_eq!(count(&records, |e| matches!(e, Event::AgentRetry(_))), 2);
    runtime.shutdown().await;
}

/// An account's wait is a fold of the log: a runtime opened again during it holds the account's
/// runs until the reset, though no run of the new runtime met the limit.
#[tokio::test]
async fn an_account_wait_holds_across_a_restart() {
    let reset_s = T0 / 1000 + 3600;
    let account = tempfile::tempdir().expect("account dir");
    std::fs::write(account.path().join("limited"), reset_s.to_string()).expect("limit");
    let scratches: Vec<Scratch> = (0..2).map(|_| scratch(1)).collect();
    for scratch in &scratches {
        stub_plan(scratch, &[]);
    }
    share_account(&scratches, account.path());
    let clock = ManualClock::new(T0);
    let open = || runtime_on(&scratches[0], &clock);
    let request = |scratch: &Scratch| {
        claude_request(
            scratch,
            &[("run_naming_mode", "spec_slug"), ("account", "team")],
        )
    };
    let runtime = open();
    let first = runtime
        .submit(request(&scratches[0]))
        .await
        .expect("submit");
    let until = wait_for_waiting(&runtime, first.id).await;
    runtime.shutdown().await;
    drop(runtime);

    let runtime = open();
    let second = runtime
        .submit(request(&scratches[1]))
        .await
        .expect("submit");
    let view = waiting_with(&runtime, second.id, "account_limit").await;
    assert_eq!(
        view.waiting.as_ref().map(|w| (w.code.as_str(), w.until_ms)),
        Some(("account_limit", Some(until))),
        "{view:?}"
    );
    let calls = std::fs::read_to_string(account.path().join("calls")).unwrap_or_default();
    assert_eq!(
        calls.lines().count(),
        1,
        "only the first run called: {calls}"
    );

    std::fs::remove_file(account.path().join("limited")).expect("reset");
    clock.advance(Duration::from_secs(3700));
    for id in [first.id, second.id] {
        let done = finish(&runtime, id).await;
        assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    }
    runtime.shutdown().await;
}

/// A daily budget on an account: once its calls cost that much today, no run of the account
/// calls again until the next UTC day (one wait recorded, outside any step), then they go on;
/// with `account_budget_action=fail` the run fails instead.
#[tokio::test]
async fn an_account_budget_holds_its_runs_until_the_next_day_or_fails_them() {
    let scratches: Vec<Scratch> = (0..3).map(|_| scratch(3)).collect();
    for scratch in &scratches {
        stub_plan(scratch, &[]);
    }
    let clock = ManualClock::new(T0);
    let runtime = runtime_running(&scratches[0], &clock, 3);
    let request = |scratch: &Scratch, account: &str, action: &str| {
        claude_request(
            scratch,
            &[
                ("run_naming_mode", "spec_slug"),
                ("account", account),
                ("account_budget_usd_per_day", "1.0"),
                ("account_budget_action", action),
            ],
        )
    };
    // Two calls at $0.60 reach the $1.00 cap; the third waits for the next day.
    let first = runtime
        .submit(request(&scratches[0], "team", "wait"))
        .await
        .expect("submit");
    let until = wait_for_waiting(&runtime, first.id).await;
    let next_day = (T0.div_euclid(86_400_000) + 1) * 86_400_000;
    assert_eq!(until, next_day);
    let records = events_of(&runtime, first.id).await;
    let stop = records
        .iter()
        .find_map(|r| match &r.event {
            Event::AgentWaiting(wait) => Some(wait.clone()),
            _ => None,
        })
        .expect("the budget stop");
    assert_eq!(stop.step_id, None, "recorded outside any step");
    assert!(
        stop.reason.contains("account_budget_usd_per_day"),
        "{}",
        stop.reason
    );
    let calls_before = count(
        &records,
        |e| matches!(e, Event::StepFinished(s) if s.phase == Phase::Implementation),
    );
    assert_eq!(calls_before, 2);

    // Another run of the account is held by the same stop.
    let second = runtime
        .submit(request(&scratches[1], "team", "wait"))
        .await
        .expect("submit");
    let view = waiting_with(&runtime, second.id, "account_limit").await;
    assert_eq!(
        view.waiting.as_ref().map(|w| (w.code.as_str(), w.until_ms)),
        Some(("account_limit", Some(next_day))),
        "{view:?}"
    );
    // The same cap with action `fail`, on an account of its own that has spent it: the run fails.
    let failing = runtime
        .submit(request(&scratches[2], "strict", "fail"))
        .await
        .expect("submit");
    let done = finish(&runtime, failing.id).await;
    assert_eq!(done.status, RunStatus::Failed, "{done:?}");
    assert_eq!(done.exit_reason, Some(ExitReason::BudgetExhausted));

    // Days go by (both runs' remaining calls cost more than one day's cap): both complete.
    let ticking = keep_advancing(&clock, Duration::from_secs(3600));
    for id in [first.id, second.id] {
        let done = finish(&runtime, id).await;
        assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    }
    ticking.abort();
    let records = events_of(&runtime, second.id).await;
    assert!(
        records
            .iter()
            .all(|r| !matches!(&r.event, Event::StepStarted(s)
            if s.phase == Phase::Implementation && r.ts_ms < next_day)),
        "the held run called before the next day"
    );
    runtime.shutdown().await;
}

/// `account_reserve_pct`: once the agent reports its window used beyond what the run keeps
/// free, the run starts no new iteration until the window resets (its view says so); a run of
/// the same account that keeps no reserve goes on.
#[tokio::test]
async fn a_run_keeping_a_reserve_starts_no_iteration_past_it_until_the_window_resets() {
    let reset_s = T0 / 1000 + 1800;
    let scratches: Vec<Scratch> = (0..2).map(|_| scratch(3)).collect();
    stub_plan(&scratches[0], &[format!("window:0.95:{reset_s}")]);
    stub_plan(&scratches[1], &[]);
    let clock = ManualClock::new(T0);
    let runtime = runtime_running(&scratches[0], &clock, 2);
    let request = |scratch: &Scratch, reserve: &str| {
        claude_request(
            scratch,
            &[
                ("run_naming_mode", "spec_slug"),
                ("account", "team"),
                ("account_reserve_pct", reserve),
            ],
        )
    };
    let keeper = runtime
        .submit(request(&scratches[0], "10"))
        .await
        .expect("submit");
    // The first call reports 95% of the window used: past the 90% this run allows itself.
    let view = waiting_with(&runtime, keeper.id, "account_reserve").await;
    let waiting = view.waiting.clone().expect("the run says why it waits");
    assert_eq!(
        (waiting.code.as_str(), waiting.until_ms),
        ("account_reserve", Some(reset_s * 1000)),
        "{view:?}"
    );
    assert!(waiting.reason.contains("95%"), "{}", waiting.reason);
    assert_eq!(
        view.tasks_done, 1,
        "one iteration, then none past the reserve"
    );

    // A run of the same account that keeps no reserve is not held by it.
    let spender = runtime
        .submit(request(&scratches[1], "0"))
        .await
        .expect("submit");
    let done = finish(&runtime, spender.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    assert_eq!(view_of(&runtime, keeper.id).await.tasks_done, 1);
    let accounts = runtime.accounts();
    let window = accounts[0].state.window.clone().expect("the window seen");
    assert_eq!(
        (window.status.as_str(), window.utilization),
        ("allowed_warning", Some(0.95))
    );

    clock.advance(Duration::from_secs(1900));
    let done = finish(&runtime, keeper.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    runtime.shutdown().await;
}

/// Fair share: an account that admits one call at once (`account_concurrency=1`) gives its
/// runs turns by iteration. While one run's call is in flight the other waits and says so;
/// then each takes an iteration in turn, never two in a row while the other still wants one,
/// and no two calls of the account overlap.
#[tokio::test]
async fn runs_of_an_account_admitting_one_call_take_turns_by_iteration() {
    let scratches: Vec<Scratch> = (0..2).map(|_| scratch(3)).collect();
    let account = tempfile::tempdir().expect("account dir");
    share_account(&scratches, account.path());
    // The first run's first call is slow, so the second comes to wait for its turn.
    stub_plan(&scratches[0], &["quiet:2".to_owned()]);
    stub_plan(&scratches[1], &[]);
    let clock = ManualClock::new(T0);
    let runtime = runtime_running(&scratches[0], &clock, 2);
    let request = |scratch: &Scratch| {
        claude_request(
            scratch,
            &[
                ("run_naming_mode", "spec_slug"),
                ("account", "team"),
                ("account_concurrency", "1"),
            ],
        )
    };
    let first = runtime
        .submit(request(&scratches[0]))
        .await
        .expect("submit");
    let calls = account.path().join("calls");
    for _ in 0..600 {
        if std::fs::read_to_string(&calls).is_ok_and(|c| !c.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = runtime
        .submit(request(&scratches[1]))
        .await
        .expect("submit");
    let view = waiting_with(&runtime, second.id, "account_turn").await;
    let reason = view.waiting.expect("why it waits").reason;
    assert!(reason.contains("1 of its 1 calls"), "{reason}");
    let accounts = runtime.accounts();
    assert_eq!(
        (accounts[0].concurrency, accounts[0].turn_queue.clone()),
        (Some(1), vec![second.id])
    );

    for run in [first.id, second.id] {
        let done = finish(&runtime, run).await;
        assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    }
    // The account's calls in the order they started, by run.
    let order: Vec<RunId> = std::fs::read_to_string(&calls)
        .expect("calls")
        .lines()
        .map(|line| {
            line.split(' ')
                .next()
                .expect("a run id")
                .parse()
                .expect("a run id")
        })
        .collect();
    let last_of = |run| order.iter().rposition(|r| *r == run).expect("a call");
    let both_want = last_of(first.id).min(last_of(second.id));
    assert!(
        order[..=both_want].windows(2).all(|w| w[0] != w[1]),
        "turns alternate while both runs want them: {order:?}"
    );
    // One call at a time: every implementation step closes before the next one opens.
    let mut steps: Vec<(u64, u64)> = Vec::new();
    for run in [first.id, second.id] {
        let mut open = None;
        for record in events_of(&runtime, run).await {
            match &record.event {
                Event::StepStarted(s) if s.phase == Phase::Implementation => {
                    open = Some(record.seq.0)
                }
                Event::StepFinished(s) if s.phase == Phase::Implementation => {
                    steps.push((open.take().expect("a started step"), record.seq.0));
                }
                _ => {}
            }
        }
    }
    steps.sort();
    assert!(
        steps.windows(2).all(|w| w[0].1 < w[1].0),
        "calls overlapped: {steps:?}"
    );
    runtime.shutdown().await;
}
