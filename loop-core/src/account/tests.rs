//! The book's fold of the log, a one-account run's decision and fair share's turns.

use std::collections::BTreeMap;

use super::*;
use crate::event::{AgentWaiting, NameSource, RunCreated, StepFinished};
use crate::ids::Seq;

fn record(run: RunId, version: u64, ts_ms: i64, event: impl Into<Event>) -> EventRecord {
    EventRecord {
        seq: Seq(version),
        run_id: run,
        version: Version(version),
        ts_ms,
        schema: crate::event::SCHEMA,
        event: event.into(),
    }
}

fn created(account: &str) -> RunCreated {
    let mut config = BTreeMap::new();
    config.insert("account".to_owned(), account.to_owned());
    RunCreated {
        name: "n".into(),
        name_source: NameSource::SpecSlug,
        workspace_root: "/w".into(),
        spec_path: "s".into(),
        plan_path: "p".into(),
        config,
        prompt_template: None,
        tasks_done: None,
        tasks_total: None,
    }
}

fn finished(status: StepStatus, cost: f64) -> StepFinished {
    let json = serde_json::json!({
        "step_id": "01a21350-1f27-75a5-bc3b-0076ab9d10be", "phase": "implementation",
        "status": status, "cost_usd": cost,
    });
    serde_json::from_value(json).expect("a step end")
}

fn created_with(account: &str, pairs: &[(&str, &str)]) -> RunCreated {
    let mut created = created(account);
    for (key, value) in pairs {
        created
            .config
            .insert((*key).to_owned(), (*value).to_owned());
    }
    created
}

fn started(phase: Phase, iteration: u32) -> Event {
    let step_id = crate::ids::StepId::from_parts(1, [iteration as u8; 10]);
    let json = serde_json::json!({
        "step_id": step_id, "phase": phase, "iteration": iteration,
    });
    Event::StepStarted(serde_json::from_value(json).expect("a step start"))
}

/// Runs on a one-call account, each asking again as soon as its call ends: who gets the
/// turns, in order.
fn turns_taken(priorities: &[u32], turns: usize) -> Vec<usize> {
    let mut book = AccountBook::new();
    let runs: Vec<RunId> = (0..priorities.len())
        .map(|i| RunId::from_parts(1, [i as u8 + 1; 10]))
        .collect();
    let mut versions = vec![1u64; runs.len()];
    for (run, priority) in runs.iter().zip(priorities) {
        let config = [
            ("account_concurrency", "1"),
            ("priority", &*priority.to_string()),
        ];
        book.apply(&record(*run, 1, 0, created_with("team", &config)));
    }
    let mut since = vec![0u64; runs.len()];
    let mut order = Vec::new();
    for now in 1..=turns as i64 {
        let waiting: Vec<Waiter> = runs
            .iter()
            .zip(&since)
            .map(|(run, since)| Waiter {
                run_id: *run,
                arrived: *since,
            })
            .collect();
        let going: Vec<usize> = (0..runs.len())
            .filter(|i| turn(&book, "team", &waiting, 0, runs[*i]) == Turn::Go)
            .collect();
        assert_eq!(going.len(), 1, "one call at a time: {going:?}");
        let i = going[0];
        let iteration = book.runs[&runs[i]].iterations + 1;
        versions[i] += 1;
        book.apply(&record(
            runs[i],
            versions[i],
            now,
            started(Phase::Implementation, iteration),
        ));
        // While its call is in flight nobody else goes.
        assert!(matches!(
            turn(&book, "team", &waiting, 0, runs[(i + 1) % runs.len()]),
            Turn::Wait {
                in_flight: 1,
                cap: 1,
                ..
            }
        ));
        versions[i] += 1;
        book.apply(&record(
            runs[i],
            versions[i],
            now,
            finished(StepStatus::Succeeded, 0.0),
        ));
        since[i] = now as u64;
        order.push(i);
    }
    order
}

#[test]
fn runs_on_a_capped_account_take_turns_by_iteration_weighted_by_priority() {
    assert_eq!(turns_taken(&[1, 1, 1], 9), [0, 1, 2, 0, 1, 2, 0, 1, 2]);
    let weighted = turns_taken(&[2, 1, 1], 12);
    let count = |i| weighted.iter().filter(|&&r| r == i).count();
    assert_eq!((count(0), count(1), count(2)), (6, 3, 3), "{weighted:?}");
}

#[test]
fn a_call_started_after_the_reset_is_the_probe_every_node_sees() {
    let mut book = AccountBook::new();
    let (a, b) = (RunId::from_parts(1, [1; 10]), RunId::from_parts(1, [2; 10]));
    book.apply(&record(a, 1, 0, created("team")));
    book.apply(&record(b, 1, 0, created("team")));
    // A call that began before the reset is no probe; one after it is.
    book.apply(&record(a, 2, 900, started(Phase::Implementation, 1)));
    assert_eq!(book.probing("team", 1_000), None);
    book.apply(&record(b, 2, 1_200, started(Phase::Review, 1)));
    assert_eq!(book.probing("team", 1_000), Some(b));
    assert_eq!(book.probing("other", 1_000), None);
    book.apply(&record(b, 3, 1_300, finished(StepStatus::Succeeded, 0.0)));
    assert_eq!(book.probing("team", 1_000), None);
}

#[test]
fn without_a_cap_every_run_goes_and_granted_calls_count_against_one() {
    let mut book = AccountBook::new();
    let (a, b) = (RunId::from_parts(1, [1; 10]), RunId::from_parts(1, [2; 10]));
    book.apply(&record(a, 1, 0, created("team")));
    book.apply(&record(
        b,
        1,
        0,
        created_with("team", &[("account_concurrency", "2")]),
    ));
    let waiting = [
        Waiter {
            run_id: a,
            arrived: 0,
        },
        Waiter {
            run_id: b,
            arrived: 1,
        },
    ];
    assert_eq!(book.concurrency_of("team"), Some(2));
    assert_eq!(turn(&book, "team", &waiting, 0, b), Turn::Go);
    book.apply(&record(a, 2, 5, started(Phase::Review, 1)));
    assert_eq!(book.calls_in_flight("team"), 1);
    assert_eq!(
        turn(&book, "team", &waiting[1..], 1, b),
        Turn::Wait {
            in_flight: 2,
            cap: 2,
            ahead: 0
        }
    );
    // The run that set the cap ends: the account has none any more.
    book.apply(&record(
        b,
        2,
        6,
        Event::RunCanceled(serde_json::from_value(serde_json::json!({})).expect("a cancel")),
    ));
    assert_eq!(book.concurrency_of("team"), None);
    assert_eq!(turn(&book, "team", &waiting, 5, a), Turn::Go);
}

#[test]
fn a_limit_holds_the_account_until_a_call_succeeds_after_its_reset() {
    let run = RunId::from_parts(1, [1; 10]);
    let mut book = AccountBook::new();
    book.apply(&record(run, 1, 0, created("team")));
    // Met by a call, inside its step (a budget stop has no step).
    let wait = AgentWaiting {
        step_id: Some(
            "01a21350-1f27-75a5-bc3b-0076ab9d10be"
                .parse()
                .expect("a step id"),
        ),
        until_ms: 1_000,
        reason: "limit".into(),
        paid: Default::default(),
        account: None,
        window: None,
        pool_wait: None,
    };
    book.apply(&record(run, 2, 10, wait));
    let state = book.state("team").expect("team").clone();
    assert_eq!(state.limited_until_ms, Some(1_000));
    // The one decision holds a run of one account as it holds a pool: until the reset, then
    // one probe, the others waiting for its answer.
    let config = RunConfig::from_frozen(&created("team").config);
    let other = RunId::from_parts(2, [2; 10]);
    book.apply(&record(other, 1, 0, created("team")));
    let decide = |book: &AccountBook, run: RunId, probes: &[(&str, RunId)], now_ms: i64| {
        let mut local = Local::default();
        for (account, by) in probes {
            local.probes.insert((*account).to_owned(), *by);
        }
        let ask = Ask {
            run_id: run,
            config: &config,
            kind: CallKind::Again,
            model: "",
            previous: None,
            now_ms,
        };
        before_call(book, &local, &ask)
    };
    assert!(matches!(
        decide(&book, run, &[], 999),
        Decision::Wait {
            until_ms: Some(1_000),
            hold: Hold::Limited { .. }
        }
    ));
    assert_eq!(
        decide(&book, run, &[], 1_000),
        Decision::Call {
            account: "team".into(),
            probe: true
        }
    );
    assert!(matches!(
        decide(&book, other, &[("team", run)], 1_000),
        Decision::Wait { until_ms: None, hold: Hold::Probing { by, .. } } if by == run
    ));
    // A call that succeeded before the reset (it began before the limit) proves nothing.
    book.apply(&record(run, 3, 500, finished(StepStatus::Succeeded, 0.5)));
    assert_eq!(book.state("team").unwrap().limited_until_ms, Some(1_000));
    book.apply(&record(
        run,
        4,
        1_500,
        finished(StepStatus::Succeeded, 0.25),
    ));
    let state = book.state("team").unwrap();
    assert_eq!(state.limited_until_ms, None);
    assert_eq!((state.calls, state.limits_met), (3, 1));
    assert!((state.spent_day_usd - 0.75).abs() < 1e-9);
}

#[test]
fn a_record_applied_twice_or_out_of_turn_changes_nothing() {
    let run = RunId::from_parts(1, [1; 10]);
    let mut book = AccountBook::new();
    let first = record(run, 1, 0, created("team"));
    let paid = record(run, 2, 10, finished(StepStatus::Succeeded, 1.0));
    let ahead = record(run, 4, 20, finished(StepStatus::Succeeded, 7.0));
    for r in [&first, &paid, &first, &paid, &ahead] {
        book.apply(r);
    }
    let state = book.state("team").unwrap();
    assert_eq!(state.calls, 1);
    assert!((state.spent_month_usd - 1.0).abs() < 1e-9);
}

#[test]
fn spend_starts_again_on_a_new_utc_day_and_month() {
    assert_eq!(budget::month_of(0), 1970 * 12);
    // 2026-01-31T23:59:59Z and 2026-02-01T00:00:00Z.
    assert_eq!(
        budget::month_of(1_769_903_999_000) + 1,
        budget::month_of(1_769_904_000_000)
    );
    let run = RunId::from_parts(1, [1; 10]);
    let mut book = AccountBook::new();
    book.apply(&record(run, 1, 0, created("team")));
    book.apply(&record(
        run,
        2,
        1_769_903_999_000,
        finished(StepStatus::Succeeded, 2.0),
    ));
    book.apply(&record(
        run,
        3,
        1_769_904_000_000,
        finished(StepStatus::Succeeded, 3.0),
    ));
    let state = book.state("team").unwrap();
    assert!((state.spent_day_usd - 3.0).abs() < 1e-9);
    assert!((state.spent_month_usd - 3.0).abs() < 1e-9);
}

#[test]
fn a_pool_run_s_own_wait_holds_no_account_and_is_no_call() {
    let run = RunId::from_parts(1, [1; 10]);
    let mut book = AccountBook::new();
    book.apply(&record(run, 1, 0, created("team")));
    let wait = AgentWaiting {
        step_id: None,
        until_ms: 1_000,
        reason: "every account of the pool is held".into(),
        paid: Default::default(),
        account: Some("team".into()),
        window: None,
        pool_wait: Some(crate::event::PoolWait::Reserve),
    };
    book.apply(&record(run, 2, 10, wait));
    assert_eq!(book.state("team"), Some(&AccountState::default()));
    // The fold goes on after it.
    book.apply(&record(run, 3, 20, finished(StepStatus::Succeeded, 0.5)));
    assert_eq!(book.state("team").map(|s| s.calls), Some(1));
}
