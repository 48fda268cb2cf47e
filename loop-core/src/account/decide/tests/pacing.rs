//! Pacing to the reserve, budgets, and the account with the most headroom.

use super::*;

#[test]
fn pacing_holds_an_iteration_that_would_cross_the_reserve() {
    let mut log = Log::new();
    let (run, config) = log.run(
        1,
        &[
            ("account", "work-1"),
            ("account_reserve_pct", "20"),
            ("reviewer", "false"),
        ],
    );
    // Two calls of 10% each: an iteration takes about 10%.
    log.call(run, NOW - 30, "work-1", 0.5, &[("five_hour", 0.50)]);
    log.call(run, NOW - 20, "work-1", 0.5, &[("five_hour", 0.60)]);
    log.call(run, NOW - 10, "work-1", 0.5, &[("five_hour", 0.70)]);
    let go = before_call(
        &log.book,
        &Local::default(),
        &ask(run, &config, "opus", CallKind::Iteration),
    );
    assert_eq!(
        go,
        Decision::Call {
            account: "work-1".into(),
            probe: false
        },
        "70% + 10% is the line"
    );
    log.call(run, NOW - 5, "work-1", 0.5, &[("five_hour", 0.75)]);
    let held = before_call(
        &log.book,
        &Local::default(),
        &ask(run, &config, "opus", CallKind::Iteration),
    );
    assert!(
        matches!(&held, Decision::Wait { until_ms: Some(u), hold: Hold::Reserve { .. } } if *u == NOW + 3_600_000),
        "{held:?}"
    );
    // A review call of the iteration under way is not held by the reserve.
    assert!(matches!(
        before_call(
            &log.book,
            &Local::default(),
            &ask(run, &config, "opus", CallKind::Review)
        ),
        Decision::Call { .. }
    ));
}

#[test]
fn a_budget_with_action_fail_fails_only_when_no_account_is_left() {
    let mut log = Log::new();
    let (run, config) = log.run(
        1,
        &[
            POOL,
            ("account_budget_usd_per_day", "1"),
            ("account_budget_action", "fail"),
        ],
    );
    log.call(run, NOW - 10, "work-1", 2.0, &[]);
    assert_eq!(
        before_call(
            &log.book,
            &Local::default(),
            &ask(run, &config, "opus", CallKind::Iteration)
        ),
        Decision::Call {
            account: "work-2".into(),
            probe: false
        }
    );
    log.call(run, NOW - 9, "work-2", 2.0, &[]);
    log.call(run, NOW - 8, "personal", 2.0, &[]);
    assert!(matches!(
        before_call(
            &log.book,
            &Local::default(),
            &ask(run, &config, "opus", CallKind::Iteration)
        ),
        Decision::Fail {
            hold: Hold::OverBudget { .. }
        }
    ));
}

#[test]
fn the_account_with_the_most_headroom_takes_the_call() {
    let mut log = Log::new();
    let (run, config) = log.run(1, &[POOL]);
    log.call(run, NOW - 30, "work-1", 0.1, &[("five_hour", 0.9)]);
    log.call(run, NOW - 20, "work-2", 0.1, &[("five_hour", 0.2)]);
    log.call(run, NOW - 10, "personal", 0.1, &[("five_hour", 0.5)]);
    assert_eq!(
        before_call(
            &log.book,
            &Local::default(),
            &ask(run, &config, "opus", CallKind::Iteration)
        ),
        Decision::Call {
            account: "work-2".into(),
            probe: false
        }
    );
}
