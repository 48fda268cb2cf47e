//! The forecast: the window that binds, the cost that stops, a pool's room and limits.

use super::*;

#[test]
fn the_forecast_names_the_window_that_binds_and_the_cost_that_stops() {
    let mut log = Log::new();
    let (run, _) = log.run(
        1,
        &[
            ("account", "work-1"),
            ("account_reserve_pct", "20"),
            ("reviewer", "false"),
            ("max_cost_usd", "0"),
        ],
    );
    let step = |log: &mut Log, at: i64, used: f64, done: u32| {
        let started = json!({"step_id": "01a21350-1f27-75a5-bc3b-0076ab9d10be", "phase": "implementation", "iteration": done});
        log.add(
            run,
            at - 60_000,
            Event::StepStarted(serde_json::from_value(started).unwrap()),
        );
        let finished = json!({
            "step_id": "01a21350-1f27-75a5-bc3b-0076ab9d10be", "phase": "implementation",
            "status": "SUCCEEDED", "cost_usd": 1.0, "account": "work-1", "tasks_done": done, "tasks_total": 20,
            "agent": {"models": ["claude-opus-4-7"], "windows": [{"status": "allowed", "window": "five_hour", "resets_at_ms": NOW + 3_600_000, "utilization": used}]},
        });
        log.add(
            run,
            at,
            Event::StepFinished(serde_json::from_value(finished).unwrap()),
        );
    };
    step(&mut log, NOW - 300_000, 0.50, 1);
    step(&mut log, NOW - 200_000, 0.60, 2);
    step(&mut log, NOW - 100_000, 0.70, 3);
    let forecast = crate::account::forecast(&log.book, run, NOW).expect("a forecast");
    assert_eq!(
        (forecast.tasks_left, forecast.iteration_ms),
        (Some(17), Some(60_000))
    );
    // 10% an iteration, 80% allowed: one more fits now, then eight a five-hour period.
    match &forecast.binding {
        Some(crate::account::Binding::Window {
            window,
            resets_at_ms,
            ..
        }) => {
            assert_eq!(
                (window.as_str(), *resets_at_ms),
                ("five_hour", NOW + 3_600_000)
            );
        }
        other => panic!("{other:?}"),
    }
    let period = 5 * 3_600_000;
    assert_eq!(
        forecast.finish_ms,
        Some(NOW + 3_600_000 + period + 8 * 60_000)
    );
    // With a cost cap it cannot reach, the cap binds and no finish is promised.
    let mut log2 = Log::new();
    let (capped, _) = log2.run(1, &[("max_cost_usd", "5")]);
    let finished = json!({"step_id": "01a21350-1f27-75a5-bc3b-0076ab9d10be", "phase": "implementation", "status": "SUCCEEDED", "cost_usd": 1.0, "tasks_done": 1, "tasks_total": 10});
    log2.add(
        capped,
        NOW,
        Event::StepFinished(serde_json::from_value(finished).unwrap()),
    );
    let forecast = crate::account::forecast(&log2.book, capped, NOW).expect("a forecast");
    assert!(
        matches!(forecast.binding, Some(crate::account::Binding::MaxCost { max_usd, .. }) if max_usd == 5.0)
    );
    assert_eq!(forecast.finish_ms, None);
}

#[test]
fn a_pool_s_forecast_adds_up_the_room_of_its_accounts() {
    let mut log = Log::new();
    let (run, _) = log.run(
        1,
        &[
            ("account_pool", "work-1 work-2"),
            ("account_reserve_pct", "20"),
            ("reviewer", "false"),
        ],
    );
    let step = |log: &mut Log, at: i64, account: &str, used: f64, done: u32| {
        let started = json!({"step_id": "01a21350-1f27-75a5-bc3b-0076ab9d10be", "phase": "implementation", "iteration": done, "account": account});
        log.add(
            run,
            at - 60_000,
            Event::StepStarted(serde_json::from_value(started).unwrap()),
        );
        let finished = json!({
            "step_id": "01a21350-1f27-75a5-bc3b-0076ab9d10be", "phase": "implementation",
            "status": "SUCCEEDED", "cost_usd": 1.0, "account": account, "tasks_done": done, "tasks_total": 20,
            "agent": {"models": ["claude-opus-4-7"], "windows": [{"status": "allowed", "window": "five_hour", "resets_at_ms": NOW + 3_600_000, "utilization": used}]},
        });
        log.add(
            run,
            at,
            Event::StepFinished(serde_json::from_value(finished).unwrap()),
        );
    };
    step(&mut log, NOW - 400_000, "work-1", 0.50, 1);
    step(&mut log, NOW - 300_000, "work-1", 0.60, 2);
    step(&mut log, NOW - 200_000, "work-2", 0.50, 3);
    step(&mut log, NOW - 100_000, "work-2", 0.60, 4);
    let forecast = crate::account::forecast(&log.book, run, NOW).expect("a forecast");
    assert_eq!(
        (forecast.tasks_left, forecast.iteration_ms),
        (Some(16), Some(60_000))
    );
    // 10% an iteration, 80% allowed: two more fit on each account now, then 16 tasks a
    // five-hour period across the two, so the 12 left after the reset need no second period.
    // (One account alone would wait for the reset and then a whole period more.)
    assert_eq!(forecast.finish_ms, Some(NOW + 3_600_000 + 12 * 60_000));
    match &forecast.binding {
        Some(crate::account::Binding::Window {
            account,
            window,
            resets_at_ms,
        }) => assert_eq!(
            (account.as_str(), window.as_str(), *resets_at_ms),
            ("work-1", "five_hour", NOW + 3_600_000)
        ),
        other => panic!("{other:?}"),
    }
}

/// A pool run whose accounts are held (one by a usage limit, the other by its reserve) is
/// bound first by the limit that ends first: the forecast names it, not "its own pace".
#[test]
fn a_pool_s_forecast_names_the_limit_it_waits_for() {
    let mut log = Log::new();
    let (run, _) = log.run(
        1,
        &[
            ("account_pool", "work-1 work-2"),
            ("account_reserve_pct", "20"),
            ("reviewer", "false"),
        ],
    );
    let step = |log: &mut Log, at: i64, account: &str, used: f64, done: u32| {
        let started = json!({"step_id": "01a21350-1f27-75a5-bc3b-0076ab9d10be", "phase": "implementation", "iteration": done, "account": account});
        log.add(
            run,
            at - 60_000,
            Event::StepStarted(serde_json::from_value(started).unwrap()),
        );
        let finished = json!({
            "step_id": "01a21350-1f27-75a5-bc3b-0076ab9d10be", "phase": "implementation",
            "status": "SUCCEEDED", "cost_usd": 1.0, "account": account, "tasks_done": done, "tasks_total": 20,
            "agent": {"models": ["claude-opus-4-7"], "windows": [{"status": "allowed", "window": "five_hour", "resets_at_ms": NOW + 3_600_000, "utilization": used}]},
        });
        log.add(
            run,
            at,
            Event::StepFinished(serde_json::from_value(finished).unwrap()),
        );
    };
    step(&mut log, NOW - 400_000, "work-1", 0.50, 1);
    step(&mut log, NOW - 300_000, "work-1", 0.60, 2);
    step(&mut log, NOW - 200_000, "work-2", 0.70, 3);
    step(&mut log, NOW - 100_000, "work-2", 0.80, 4);
    log.limit(run, "work-1", NOW + 600_000, None);
    let forecast = crate::account::forecast(&log.book, run, NOW).expect("a forecast");
    assert_eq!(
        forecast.binding,
        Some(crate::account::Binding::Limit {
            account: "work-1".into(),
            until_ms: NOW + 600_000
        })
    );
}

/// The plan's tasks counted at submit are the tasks left before any step ends: the board's
/// forecast said "?" left for a run the same board showed at 0/4 (seen on the screenshot of a
/// wordfreq run at work).
#[test]
fn a_run_s_tasks_left_are_known_from_its_plan_at_submit() {
    let mut log = Log::new();
    let run = RunId::from_parts(1, [7; 10]);
    let created = json!({
        "name": "n", "workspace_root": "/w", "spec_path": "s", "plan_path": "p",
        "config": crate::config::Config::resolve([]).values().clone(),
        "tasks_done": 1, "tasks_total": 4,
    });
    log.add(
        run,
        0,
        Event::RunCreated(serde_json::from_value(created).expect("a creation")),
    );
    let started = json!({"step_id": "01a21350-1f27-75a5-bc3b-0076ab9d10be", "phase": "implementation", "iteration": 1});
    log.add(
        run,
        NOW - 1_000,
        Event::StepStarted(serde_json::from_value(started).expect("a start")),
    );
    let forecast = crate::account::forecast(&log.book, run, NOW).expect("a forecast");
    assert_eq!(forecast.tasks_left, Some(3));
}
