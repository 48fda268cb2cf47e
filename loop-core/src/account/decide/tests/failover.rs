//! Failover between accounts, the earliest reset and one probe, a model's own limit.

use super::*;

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
