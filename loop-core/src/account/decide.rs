//! Before an agent call: which account of the run's pool it goes to, or why it waits or
//! fails — the one decision, over the folded log ([`AccountBook`]) and the run's typed
//! configuration. The runtime's account owner applies it with its clock; the texts shown to
//! people come from the typed [`Hold`].
//!
//! For each account of the pool, in order:
//!
//! 1. **limit** — a usage limit met and not cleared, in a window counting the call's model (a
//!    model's own weekly window holds only that model): before its reset the account is held;
//!    after it, one run probes (this node's choice, or a call the log shows in flight since the
//!    reset) and the others hold until it is answered;
//! 2. **budget** — the account's spend today or this month at the run's cap;
//! 3. **reserve and pacing** — for a call that starts an iteration, in a run keeping a reserve
//!    (`account_reserve_pct`): no window counting the model may be used past `100 − reserve`
//!    percent once the iteration's expected share is added (the mean share a call of each of
//!    its models took, as the log shows), so the reserve is never crossed rather than noticed
//!    once it is; held until the window resets;
//! 4. **turn** — under `account_concurrency`, the run's turn among the account's waiting runs.
//!
//! Of the accounts left, the call goes to the one with the most headroom (the least share of
//! its binding window or budget used, the reserve counted as used), a retry staying on its
//! account when that one ties. With none left the run waits for the earliest reset among the
//! holds (or for the change a probe's answer or a turn brings), or fails: every account over a
//! budget whose action is `fail`, or every account held by a limit in a run that does not wait
//! for limits (`usage_limit_wait=false`).

use std::collections::BTreeMap;
use std::fmt;

use super::budget::{OverBudget, over_budget};
use super::turn::{Turn, Waiter, turn};
use super::window::{self, Window};
use super::{AccountBook, AccountState, UNNAMED};
use crate::config::RunConfig;
use crate::ids::RunId;
use crate::time::rfc3339_ms;

/// What kind of call is about to be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// An implementation call that starts an iteration: reserve and pacing apply.
    Iteration,
    /// A review call.
    Review,
    /// Another call of a step already under way (after a retry or a limit): its turn is taken.
    Again,
}

/// A run about to call its agent.
#[derive(Clone, Copy, Debug)]
pub struct Ask<'a> {
    pub run_id: RunId,
    pub config: &'a RunConfig,
    pub kind: CallKind,
    /// The model the call asks for (empty: the agent's default).
    pub model: &'a str,
    /// The account of the step's previous call: it keeps the call on a tie.
    pub previous: Option<&'a str>,
    pub now_ms: i64,
}

/// What this node holds in memory beside the log: the run it chose to probe each account
/// after its reset, and per account the runs waiting for a turn and the turns given whose call
/// the log does not show yet.
#[derive(Clone, Debug, Default)]
pub struct Local {
    /// Limits this node has just met and not yet recorded (the call that met one is deciding
    /// where to go on): account → reset.
    pub held: BTreeMap<String, i64>,
    pub probes: BTreeMap<String, RunId>,
    pub waiting: BTreeMap<String, Vec<Waiter>>,
    pub granted: BTreeMap<String, u32>,
}

/// The decision.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Call on `account`; `probe`: the first call after its limit's reset.
    Call { account: String, probe: bool },
    /// No account may take the call: wait until `until_ms` (the earliest reset among the
    /// holds) or until the book changes (a probe answered, a turn freed), whichever is first.
    Wait { until_ms: Option<i64>, hold: Hold },
    /// The run fails.
    Fail { hold: Hold },
}

/// Why an account may not take a call.
#[derive(Clone, Debug, PartialEq)]
pub enum Hold {
    /// A usage limit, until its reset.
    Limited {
        account: String,
        until_ms: i64,
        window: Option<String>,
        by: Option<RunId>,
        said: String,
    },
    /// The reset has passed and another run's call probes the account.
    Probing { account: String, by: RunId },
    /// The account's spend reached the run's cap.
    OverBudget { account: String, over: OverBudget },
    /// Starting an iteration would use the window past the share the run keeps free.
    Reserve {
        account: String,
        window: String,
        used: f64,
        expected: f64,
        reserve_pct: u32,
        until_ms: i64,
    },
    /// The account admits `cap` calls at once and its runs take turns.
    Turn {
        account: String,
        in_flight: u32,
        cap: u32,
        ahead: usize,
    },
}

impl Hold {
    /// A stable name for programs (the run view's `waiting.code`, notifications).
    pub fn code(&self) -> &'static str {
        match self {
            Hold::Limited { .. } => "account_limit",
            Hold::Probing { .. } => "account_probe",
            Hold::OverBudget { .. } => "account_budget",
            Hold::Reserve { .. } => "account_reserve",
            Hold::Turn { .. } => "account_turn",
        }
    }

    pub fn account(&self) -> &str {
        match self {
            Hold::Limited { account, .. }
            | Hold::Probing { account, .. }
            | Hold::OverBudget { account, .. }
            | Hold::Reserve { account, .. }
            | Hold::Turn { account, .. } => account,
        }
    }

    /// When the hold ends by itself, if it does at a known time.
    pub fn until_ms(&self) -> Option<i64> {
        match self {
            Hold::Limited { until_ms, .. } | Hold::Reserve { until_ms, .. } => Some(*until_ms),
            Hold::OverBudget { over, .. } => Some(over.until_ms),
            Hold::Probing { .. } | Hold::Turn { .. } => None,
        }
    }
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::Limited {
                account,
                until_ms,
                window,
                said,
                ..
            } => {
                let which = window
                    .as_deref()
                    .map_or_else(String::new, |w| format!(" ({w} window)"));
                write!(
                    f,
                    "account {account} is held by a usage limit{which} until {}",
                    rfc3339_ms(*until_ms)
                )?;
                if !said.is_empty() {
                    write!(f, ": {said}")?;
                }
                Ok(())
            }
            Hold::Probing { account, by } => write!(
                f,
                "account {account}: its limit's reset has passed and run {by} calls first; \
                 the others follow once that call is answered"
            ),
            Hold::OverBudget { account, over } => f.write_str(&over.reason(account)),
            Hold::Reserve {
                account,
                window,
                used,
                expected,
                reserve_pct,
                until_ms,
            } => {
                write!(
                    f,
                    "account {account}: its {window} window is {:.0}% used",
                    used * 100.0
                )?;
                // The single-account check knows no share per iteration: it says none.
                if *expected > 0.0 {
                    write!(
                        f,
                        " and an iteration takes about {:.0}% more",
                        expected * 100.0
                    )?;
                }
                write!(
                    f,
                    ", into the {reserve_pct}% this run keeps free (account_reserve_pct); no new \
                     iteration until it resets at {}",
                    rfc3339_ms(*until_ms)
                )
            }
            Hold::Turn {
                account,
                in_flight,
                cap,
                ahead,
            } => {
                let line = match ahead {
                    0 => "it is next".to_owned(),
                    1 => "1 run goes before it".to_owned(),
                    n => format!("{n} runs go before it"),
                };
                write!(
                    f,
                    "account {account}: {in_flight} of its {cap} calls at once are in flight \
                     (account_concurrency); its runs take turns by iteration and priority, and \
                     {line}"
                )
            }
        }
    }
}

/// An account that may take the call.
struct Candidate {
    account: String,
    probe: bool,
    headroom: f64,
}

/// The decision before the call `ask` describes.
pub fn before_call(book: &AccountBook, local: &Local, ask: &Ask<'_>) -> Decision {
    let mut pool: Vec<String> = book.pool_of(ask.run_id).to_vec();
    if pool.is_empty() {
        pool = ask.config.accounts();
    }
    if pool.is_empty() {
        pool.push(UNNAMED.to_owned());
    }
    let empty = AccountState::default();
    let mut open = Vec::new();
    let mut holds = Vec::new();
    for account in &pool {
        let state = book.state(account).unwrap_or(&empty);
        match weigh(book, local, ask, account, state) {
            Ok(candidate) => open.push(candidate),
            Err(hold) => holds.push(hold),
        }
    }
    let best = open.into_iter().enumerate().max_by(|(i, a), (j, b)| {
        let kept = |c: &Candidate| ask.previous == Some(c.account.as_str());
        a.headroom
            .total_cmp(&b.headroom)
            .then(kept(a).cmp(&kept(b)))
            // Earlier in the pool wins what is left: `max_by` keeps the last of equals.
            .then(j.cmp(i))
    });
    if let Some((_, best)) = best {
        return Decision::Call {
            account: best.account,
            probe: best.probe,
        };
    }
    let all = |held: fn(&Hold) -> bool| holds.iter().all(held);
    if !ask.config.usage_limit_wait
        && all(|h| matches!(h, Hold::Limited { .. } | Hold::Probing { .. }))
    {
        return Decision::Fail {
            hold: holds.swap_remove(0),
        };
    }
    if ask.config.account_budget_fails && all(|h| matches!(h, Hold::OverBudget { .. })) {
        return Decision::Fail {
            hold: holds.swap_remove(0),
        };
    }
    let until_ms = holds.iter().filter_map(Hold::until_ms).min();
    let at = holds
        .iter()
        .position(|hold| until_ms.is_some() && hold.until_ms() == until_ms)
        .unwrap_or(0);
    Decision::Wait {
        until_ms,
        hold: holds.swap_remove(at),
    }
}

/// Whether `account` may take the call, and its headroom if so.
fn weigh(
    book: &AccountBook,
    local: &Local,
    ask: &Ask<'_>,
    account: &str,
    state: &AccountState,
) -> Result<Candidate, Hold> {
    let now = ask.now_ms;
    if let Some(&until_ms) = local.held.get(account).filter(|until| now < **until) {
        return Err(Hold::Limited {
            account: account.to_owned(),
            until_ms,
            window: None,
            by: Some(ask.run_id),
            said: String::new(),
        });
    }
    let mut probe = false;
    if let Some((until_ms, window)) = state.limit_for(ask.model) {
        if now < until_ms {
            let (by, said) = limit_words(state, window);
            return Err(Hold::Limited {
                account: account.to_owned(),
                until_ms,
                window: window.map(str::to_owned),
                by,
                said,
            });
        }
        let prober = local
            .probes
            .get(account)
            .copied()
            .or_else(|| book.probing(account, until_ms));
        match prober {
            Some(by) if by != ask.run_id => {
                return Err(Hold::Probing {
                    account: account.to_owned(),
                    by,
                });
            }
            _ => probe = true,
        }
    }
    let budget = ask.config.account_budget;
    if let Some(over) = over_budget(state, budget, now) {
        return Err(Hold::OverBudget {
            account: account.to_owned(),
            over,
        });
    }
    let reserve_pct = ask.config.account_reserve_pct.min(100);
    let allowed = 1.0 - f64::from(reserve_pct) / 100.0;
    if ask.kind == CallKind::Iteration && reserve_pct > 0 {
        for (name, window) in counting(state, ask.model) {
            let Some(reset) = window.seen.resets_at_ms.filter(|reset| now < *reset) else {
                continue;
            };
            let used = window.used_at(now);
            let expected = iteration_share(window, ask);
            // A hair of tolerance, so a share that lands exactly on the line is not held.
            if used >= allowed || used + expected > allowed + 1e-9 {
                return Err(Hold::Reserve {
                    account: account.to_owned(),
                    window: name.to_owned(),
                    used,
                    expected,
                    reserve_pct,
                    until_ms: reset,
                });
            }
        }
    }
    if ask.kind != CallKind::Again
        && let Some(cap) = book.concurrency_of(account)
    {
        let waiting = local.waiting.get(account).map_or(&[][..], Vec::as_slice);
        let granted = local.granted.get(account).copied().unwrap_or(0);
        // The run asks from its place in the line, or from its end when it is not in it.
        let mut line = waiting.to_vec();
        if !line.iter().any(|w| w.run_id == ask.run_id) {
            let last = line.iter().map(|w| w.arrived).max().unwrap_or(0);
            line.push(Waiter {
                run_id: ask.run_id,
                arrived: last.saturating_add(1),
            });
        }
        if let Turn::Wait {
            in_flight, ahead, ..
        } = turn(book, account, &line, granted, ask.run_id)
        {
            return Err(Hold::Turn {
                account: account.to_owned(),
                in_flight,
                cap,
                ahead,
            });
        }
    }
    Ok(Candidate {
        account: account.to_owned(),
        probe,
        headroom: headroom(state, ask, allowed),
    })
}

/// Who met the limit in `window`, and what the agent said.
fn limit_words(state: &AccountState, window: Option<&str>) -> (Option<RunId>, String) {
    match window.and_then(window::scope_of) {
        Some(family) => state
            .model_limits
            .get(family)
            .map_or((None, String::new()), |l| (Some(l.by), l.reason.clone())),
        None => (
            state.limited_by,
            state.limit_reason.clone().unwrap_or_default(),
        ),
    }
}

/// The account's windows that count calls of `model`, by name (the last one reported when the
/// log has only that).
fn counting<'a>(
    state: &'a AccountState,
    model: &'a str,
) -> impl Iterator<Item = (&'a str, &'a Window)> + 'a {
    state
        .windows
        .iter()
        .filter(move |(name, _)| window::counts(Some(name.as_str()), model))
        .map(|(name, window)| (name.as_str(), window))
}

/// What an iteration is expected to take of `window`: one call of the model, and one of the
/// review model when the run reviews; nothing known until a call was observed.
fn iteration_share(window: &Window, ask: &Ask<'_>) -> f64 {
    let implement = window.share_of_call(ask.model).unwrap_or(0.0);
    let review_model = ask.config.model_for(crate::event::Phase::Review);
    let review =
        if ask.config.reviewer && window::counts(window.seen.window.as_deref(), review_model) {
            window.share_of_call(review_model).unwrap_or(0.0)
        } else {
            0.0
        };
    implement + review
}

/// How much room the account has for the call: the least left, over its windows counting the
/// model and its budget caps, of what the run allows itself (the reserve counted as used).
fn headroom(state: &AccountState, ask: &Ask<'_>, allowed: f64) -> f64 {
    let now = ask.now_ms;
    let windows = counting(state, ask.model).map(|(_, window)| allowed - window.used_at(now));
    let budget = ask.config.account_budget;
    let today = now.div_euclid(86_400_000) == state.day;
    let this_month = super::budget::month_of(now) == state.month;
    let day = budget.per_day_usd.map(|cap| {
        1.0 - if today {
            state.spent_day_usd / cap
        } else {
            0.0
        }
    });
    let month = budget.per_month_usd.map(|cap| {
        1.0 - if this_month {
            state.spent_month_usd / cap
        } else {
            0.0
        }
    });
    windows
        .chain(day)
        .chain(month)
        .filter(|left| left.is_finite())
        .fold(allowed, f64::min)
}

#[cfg(test)]
mod tests {
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
}
