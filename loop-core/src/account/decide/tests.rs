//! `before_call` over small logs: failover, the earliest reset and one probe, a model's own
//! limit, pacing to the reserve, budgets, headroom, the forecast; and its property test.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::event::{Event, EventRecord, RateLimitSeen};
use crate::ids::{Seq, Version};

const NOW: i64 = 1_790_000_000_000;

/// A log of runs on accounts, fed to a book.
struct Log {
    book: AccountBook,
    versions: BTreeMap<RunId, u64>,
}

impl Log {
    fn new() -> Log {
        Log {
            book: AccountBook::new(),
            versions: BTreeMap::new(),
        }
    }

    fn add(&mut self, run: RunId, ts_ms: i64, event: Event) {
        let version = self.versions.entry(run).or_insert(0);
        *version += 1;
        self.book.apply(&EventRecord {
            seq: Seq(*version),
            run_id: run,
            version: Version(*version),
            ts_ms,
            schema: crate::event::SCHEMA,
            event,
        });
    }

    fn run(&mut self, n: u8, config: &[(&str, &str)]) -> (RunId, RunConfig) {
        let run = RunId::from_parts(1, [n; 10]);
        let mut frozen = crate::config::Config::resolve([]).values().clone();
        for (key, value) in config {
            frozen.insert((*key).to_owned(), (*value).to_owned());
        }
        let created = json!({
            "name": "n", "workspace_root": "/w", "spec_path": "s", "plan_path": "p",
            "config": frozen,
        });
        self.add(
            run,
            0,
            Event::RunCreated(serde_json::from_value(created).expect("a creation")),
        );
        (run, RunConfig::from_frozen(&frozen))
    }

    fn limit(&mut self, run: RunId, account: &str, until_ms: i64, window: Option<&str>) {
        let wait = json!({
            "step_id": "01a21350-1f27-75a5-bc3b-0076ab9d10be", "until_ms": until_ms,
            "reason": "limit", "account": account, "window": window,
        });
        self.add(
            run,
            NOW - 1,
            Event::AgentWaiting(serde_json::from_value(wait).expect("a wait")),
        );
    }

    fn call(&mut self, run: RunId, at: i64, account: &str, cost: f64, windows: &[(&str, f64)]) {
        let windows: Vec<RateLimitSeen> = windows
            .iter()
            .map(|(name, used)| RateLimitSeen {
                status: "allowed".into(),
                window: Some((*name).into()),
                resets_at_ms: Some(NOW + 3_600_000),
                utilization: Some(*used),
                overage_in_use: None,
            })
            .collect();
        let step = json!({
            "step_id": "01a21350-1f27-75a5-bc3b-0076ab9d10be", "phase": "implementation",
            "status": "SUCCEEDED", "cost_usd": cost, "account": account,
            "agent": {"models": ["claude-opus-4-7"], "windows": windows},
        });
        self.add(
            run,
            at,
            Event::StepFinished(serde_json::from_value(step).expect("a step end")),
        );
    }
}

fn ask<'a>(run: RunId, config: &'a RunConfig, model: &'a str, kind: CallKind) -> Ask<'a> {
    Ask {
        run_id: run,
        config,
        kind,
        model,
        previous: None,
        now_ms: NOW,
    }
}

const POOL: (&str, &str) = ("account_pool", "work-1 work-2 personal");

/// A run of one account has the whole decision too: a window used into its reserve holds a
/// new iteration (not a further call of a step under way) until the window resets.
#[test]
fn a_run_of_one_account_keeps_its_reserve_until_the_window_resets() {
    let mut log = Log::new();
    let (run, config) = log.run(1, &[("account", "team"), ("account_reserve_pct", "10")]);
    log.call(run, NOW - 10, "team", 0.5, &[("five_hour", 0.95)]);
    let decide = |kind, now_ms| {
        let ask = Ask {
            now_ms,
            ..ask(run, &config, "opus", kind)
        };
        before_call(&log.book, &Local::default(), &ask)
    };
    let team = Decision::Call {
        account: "team".into(),
        probe: false,
    };
    assert!(
        matches!(
            decide(CallKind::Iteration, NOW),
            Decision::Wait { until_ms: Some(until), hold: Hold::Reserve { .. } }
                if until == NOW + 3_600_000
        ),
        "{:?}",
        decide(CallKind::Iteration, NOW)
    );
    assert_eq!(decide(CallKind::Again, NOW), team);
    assert_eq!(decide(CallKind::Iteration, NOW + 3_600_000), team);
}

#[test]
fn a_limit_on_one_account_sends_the_call_to_the_next_with_no_wait() {
    let mut log = Log::new();
    let (run, config) = log.run(1, &[POOL]);
    let call = |log: &Log| {
        before_call(
            &log.book,
            &Local::default(),
            &ask(run, &config, "opus", CallKind::Iteration),
        )
    };
    assert_eq!(
        call(&log),
        Decision::Call {
            account: "work-1".into(),
            probe: false
        }
    );
    log.limit(run, "work-1", NOW + 3_600_000, None);
    assert_eq!(
        call(&log),
        Decision::Call {
            account: "work-2".into(),
            probe: false
        }
    );
}

#[test]
fn with_every_account_limited_the_run_waits_for_the_earliest_reset_and_one_probes() {
    let mut log = Log::new();
    let (a, config) = log.run(1, &[POOL]);
    let (b, _) = log.run(2, &[POOL]);
    log.limit(a, "work-1", NOW + 3_000, None);
    log.limit(a, "work-2", NOW + 1_000, None);
    log.limit(b, "personal", NOW + 2_000, None);
    let decision = before_call(
        &log.book,
        &Local::default(),
        &ask(b, &config, "opus", CallKind::Iteration),
    );
    match decision {
        Decision::Wait {
            until_ms: Some(until),
            hold,
        } => {
            assert_eq!(until, NOW + 1_000);
            assert_eq!(hold.account(), "work-2");
            assert_eq!(hold.code(), "account_limit");
            assert!(
                hold.to_string().contains("until 2026-09-21T14:13:21.000Z"),
                "{hold}"
            );
        }
        other => panic!("{other:?}"),
    }
    // At the earliest reset the first to ask probes; the other waits for its answer.
    let later = Ask {
        now_ms: NOW + 1_000,
        ..ask(a, &config, "opus", CallKind::Iteration)
    };
    assert_eq!(
        before_call(&log.book, &Local::default(), &later),
        Decision::Call {
            account: "work-2".into(),
            probe: true
        }
    );
    let mut local = Local::default();
    local.probes.insert("work-2".into(), a);
    let other = Ask { run_id: b, ..later };
    // The other waits: work-2 is probed by the first, the others reset later.
    assert!(matches!(
        before_call(&log.book, &local, &other),
        Decision::Wait { until_ms: Some(until), .. } if until == NOW + 2_000
    ));
    let only_probe = Ask {
        now_ms: NOW + 1_000,
        ..other
    };
    let mut log_b = Log::new();
    let (b2, config_b) = log_b.run(2, &[("account", "work-2")]);
    log_b.limit(b2, "work-2", NOW + 1_000, None);
    let mut local_b = Local::default();
    local_b.probes.insert("work-2".into(), a);
    let asked = Ask {
        run_id: b2,
        config: &config_b,
        ..only_probe
    };
    assert!(matches!(
        before_call(&log_b.book, &local_b, &asked),
        Decision::Wait { until_ms: None, hold: Hold::Probing { by, .. } } if by == a
    ));
}

#[test]
fn a_model_s_weekly_limit_holds_only_that_model() {
    let mut log = Log::new();
    let (run, config) = log.run(1, &[("account", "work-1")]);
    log.limit(run, "work-1", NOW + 86_400_000, Some("seven_day_opus"));
    let opus = before_call(
        &log.book,
        &Local::default(),
        &ask(run, &config, "claude-opus-4-7", CallKind::Iteration),
    );
    assert!(
        matches!(&opus, Decision::Wait { hold: Hold::Limited { window: Some(w), .. }, .. } if w == "seven_day_opus"),
        "{opus:?}"
    );
    assert_eq!(
        before_call(
            &log.book,
            &Local::default(),
            &ask(run, &config, "sonnet", CallKind::Review)
        ),
        Decision::Call {
            account: "work-1".into(),
            probe: false
        }
    );
}

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
    let forecast = super::super::forecast(&log.book, run, NOW).expect("a forecast");
    assert_eq!(
        (forecast.tasks_left, forecast.iteration_ms),
        (Some(17), Some(60_000))
    );
    // 10% an iteration, 80% allowed: one more fits now, then eight a five-hour period.
    match &forecast.binding {
        Some(super::super::Binding::Window {
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
    let forecast = super::super::forecast(&log2.book, capped, NOW).expect("a forecast");
    assert!(
        matches!(forecast.binding, Some(super::super::Binding::MaxCost { max_usd, .. }) if max_usd == 5.0)
    );
    assert_eq!(forecast.finish_ms, None);
}

fn accounts() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["work-1", "work-2", "personal"][..])
}

/// What happened on the accounts: limits (some per model, some reset), paid calls that
/// report windows.
#[derive(Clone, Debug)]
enum Fact {
    Limit(&'static str, i64, Option<&'static str>),
    Call(&'static str, i64, f64, f64),
}

fn facts() -> impl Strategy<Value = Vec<Fact>> {
    let fact = prop_oneof![
        (
            accounts(),
            -5_000i64..5_000,
            prop::option::of(prop::sample::select(
                &["seven_day_opus", "seven_day_sonnet", "five_hour"][..]
            ))
        )
            .prop_map(|(a, at, w)| Fact::Limit(a, NOW + at, w)),
        (accounts(), 1i64..100_000, 0.0f64..3.0, 0.0f64..1.0)
            .prop_map(|(a, ago, cost, used)| Fact::Call(a, NOW - ago, cost, used)),
    ];
    prop::collection::vec(fact, 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the log says, the decision never sends a call to an account held by a
    /// limit counting its model, past a budget cap it knows, or (for a new iteration) into
    /// the reserve by the share it expects; and it waits or fails only when every account
    /// of the pool is held.
    #[test]
    fn never_a_held_account_never_past_a_known_budget_or_reserve(
        facts in facts(),
        reserve in 0u32..50,
        cap in prop::option::of(0.5f64..5.0),
        model in prop::sample::select(&["claude-opus-4-7", "sonnet", "gpt-5-codex"][..]),
        iteration in any::<bool>(),
        probe_by_other in any::<bool>(),
    ) {
        let mut log = Log::new();
        let cap_text = cap.map_or("0".to_owned(), |c| c.to_string());
        let reserve_text = reserve.to_string();
        let (run, config) = log.run(1, &[POOL, ("account_reserve_pct", &reserve_text), ("account_budget_usd_per_day", &cap_text), ("reviewer", "false")]);
        let (other, _) = log.run(2, &[POOL]);
        for fact in &facts {
            match fact {
                Fact::Limit(a, until, w) => log.limit(other, a, *until, *w),
                Fact::Call(a, at, cost, used) => log.call(other, *at, a, *cost, &[("five_hour", *used)]),
            }
        }
        let mut local = Local::default();
        if probe_by_other {
            local.probes.insert("work-1".into(), other);
        }
        let kind = if iteration { CallKind::Iteration } else { CallKind::Review };
        let decision = before_call(&log.book, &local, &ask(run, &config, model, kind));
        if let Decision::Call { account, probe } = &decision {
            let state = log.book.state(account).cloned().unwrap_or_default();
            if let Some((until, _)) = state.limit_for(model) {
                prop_assert!(NOW >= until, "held until {until}");
                prop_assert!(*probe);
                prop_assert!(!(probe_by_other && account == "work-1"));
            }
            prop_assert!(over_budget(&state, config.account_budget, NOW).is_none());
            if iteration && reserve > 0 {
                let allowed = 1.0 - f64::from(reserve) / 100.0;
                for (name, w) in &state.windows {
                    if window::counts(Some(name), model) && w.seen.resets_at_ms.is_some_and(|r| NOW < r) {
                        let expected = w.share_of_call(model).unwrap_or(0.0);
                        prop_assert!(w.used_at(NOW) + expected <= allowed + 1e-9);
                    }
                }
            }
        } else {
            // Every account of the pool is held for this call.
            for account in ["work-1", "work-2", "personal"] {
                let state = log.book.state(account).cloned().unwrap_or_default();
                let asked = ask(run, &config, model, kind);
                prop_assert!(weigh(&log.book, &local, &asked, account, &state).is_err());
            }
        }
    }
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
    let forecast = super::super::forecast(&log.book, run, NOW).expect("a forecast");
    assert_eq!(
        (forecast.tasks_left, forecast.iteration_ms),
        (Some(16), Some(60_000))
    );
    // 10% an iteration, 80% allowed: two more fit on each account now, then 16 tasks a
    // five-hour period across the two, so the 12 left after the reset need no second period.
    // (One account alone would wait for the reset and then a whole period more.)
    assert_eq!(forecast.finish_ms, Some(NOW + 3_600_000 + 12 * 60_000));
    match &forecast.binding {
        Some(super::super::Binding::Window {
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
    let forecast = super::super::forecast(&log.book, run, NOW).expect("a forecast");
    assert_eq!(
        forecast.binding,
        Some(super::super::Binding::Limit {
            account: "work-1".into(),
            until_ms: NOW + 600_000
        })
    );
}
