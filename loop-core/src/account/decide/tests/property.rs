//! The property test: the decision never sends a call where a known limit holds it.

use proptest::prelude::*;

use super::*;

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
