//! Agent accounts: runs grouped by the account their agent's calls count against (the
//! `account` key of the run's configuration, resolved when the run is created), and what the
//! log says of each: the usage limit it last met, and what its calls cost.
//!
//! A usage limit is the account's, not the run's: once any of its runs records one
//! (`AGENT_WAITING` with the reset time), no run of the account should start an agent call
//! before the reset, and after it one run probes before the others follow. [`AccountBook`]
//! folds the log into that state; [`gate`] decides, for one run about to call its agent,
//! whether it may.
//!
//! Fair share: an account may admit only so many calls at once (`account_concurrency`). When
//! more of its runs want one than it admits, [`turn`] lets them through by how far each has
//! come — iterations started over its `priority` — so they take turns iteration by iteration
//! rather than in the order they asked.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::event::{Event, EventRecord, Phase, RateLimitSeen, StepStatus};
use crate::ids::{RunId, Version};

/// The account of a run whose configuration names none (logs older than accounts).
pub const UNNAMED: &str = "default";

/// What the log says of one account.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AccountState {
    /// The reset time of the usage limit its runs last met, until a call succeeds after it.
    pub limited_until_ms: Option<i64>,
    /// The run that met it, and what the agent said.
    pub limited_by: Option<RunId>,
    pub limit_reason: Option<String>,
    /// Usage limits its runs met, all told.
    pub limits_met: u64,
    /// Agent calls that finished a step or were answered with a limit or a retry.
    pub calls: u64,
    /// What its calls cost on the UTC day and in the UTC month of its latest paid call.
    pub spent_day_usd: f64,
    pub spent_month_usd: f64,
    /// The rate-limit window its agent last reported (Claude Code's `rate_limit_event`).
    pub window: Option<RateLimitSeen>,
    #[serde(skip)]
    day: i64,
    #[serde(skip)]
    month: i64,
}

/// Every account's state, folded from the log; applying a record twice changes nothing.
#[derive(Clone, Debug, Default)]
pub struct AccountBook {
    runs: HashMap<RunId, RunEntry>,
    accounts: BTreeMap<String, AccountState>,
}

/// What the book keeps of one run.
#[derive(Clone, Debug)]
struct RunEntry {
    account: String,
    /// The version of the run's last applied record.
    applied: Version,
    /// Its `account_reserve_pct` (0 = none).
    reserve_pct: u32,
    /// Its `account_concurrency` (0 = no cap) and `priority` (at least 1).
    concurrency: u32,
    priority: u32,
    /// The highest iteration it started an implementation call for.
    iterations: u32,
    /// Whether a step of its agent (implementation or review) is open: a call in flight, and
    /// when it started.
    in_call: bool,
    call_started_ms: i64,
    /// Whether the run has ended; it no longer sets its account's cap.
    ended: bool,
}

impl AccountBook {
    pub fn new() -> AccountBook {
        AccountBook::default()
    }

    /// Applies the next record of a run: one whose version follows the last applied. Any other
    /// (applied already, or ahead of a gap) is skipped, so two feeds of one log (what a runtime
    /// appends, and the log read from its start) can both be applied in any interleaving.
    pub fn apply(&mut self, record: &EventRecord) {
        if let Event::RunCreated(created) = &record.event {
            if self.runs.contains_key(&record.run_id) {
                return;
            }
            let account = created
                .config
                .get("account")
                .filter(|a| !a.is_empty())
                .cloned()
                .unwrap_or_else(|| UNNAMED.to_owned());
            self.accounts.entry(account.clone()).or_default();
            let number = |key: &str| created.config.get(key).and_then(|n| n.parse::<u32>().ok());
            let entry = RunEntry {
                account,
                applied: record.version,
                reserve_pct: number("account_reserve_pct").unwrap_or(0).min(100),
                concurrency: number("account_concurrency").unwrap_or(0),
                priority: number("priority").unwrap_or(1).max(1),
                iterations: 0,
                in_call: false,
                call_started_ms: 0,
                ended: false,
            };
            self.runs.insert(record.run_id, entry);
            return;
        }
        let Some(run) = self.runs.get_mut(&record.run_id) else {
            return;
        };
        if record.version != run.applied.next() {
            return;
        }
        run.applied = record.version;
        match &record.event {
            Event::StepStarted(step)
                if matches!(step.phase, Phase::Implementation | Phase::Review) =>
            {
                run.in_call = true;
                run.call_started_ms = record.ts_ms;
                if step.phase == Phase::Implementation {
                    run.iterations = run.iterations.max(step.iteration);
                }
            }
            Event::StepFinished(_) => run.in_call = false,
            Event::RunRetried(_) => run.ended = false,
            event if event.is_terminal() => {
                run.in_call = false;
                run.ended = true;
            }
            _ => {}
        }
        let state = self.accounts.entry(run.account.clone()).or_default();
        if let Some(cost) = record.event.paid().and_then(|paid| paid.cost_usd) {
            let day = record.ts_ms.div_euclid(86_400_000);
            let month = month_of(record.ts_ms);
            state.spent_day_usd = if day == state.day {
                state.spent_day_usd + cost
            } else {
                cost
            };
            state.spent_month_usd = if month == state.month {
                state.spent_month_usd + cost
            } else {
                cost
            };
            state.day = day;
            state.month = month;
        }
        match &record.event {
            // A usage limit is met by a call, inside its step; a budget stop is recorded outside
            // any step and costs no call.
            Event::AgentWaiting(wait) => {
                if wait.step_id.is_some() {
                    state.calls += 1;
                    state.limits_met += 1;
                }
                state.limited_until_ms = Some(wait.until_ms);
                state.limited_by = Some(record.run_id);
                state.limit_reason = Some(wait.reason.clone());
            }
            Event::AgentRetry(_) => state.calls += 1,
            Event::StepFinished(step)
                if matches!(step.phase, Phase::Implementation | Phase::Review) =>
            {
                state.calls += 1;
                if let Some(window) = step.agent.as_ref().and_then(|a| a.rate_limit.clone()) {
                    state.window = Some(window);
                }
                // A call that succeeded once the reset has passed: the account serves again.
                // One that succeeded before it (it started before the limit) proves nothing.
                let past_reset = state
                    .limited_until_ms
                    .is_some_and(|until| record.ts_ms >= until);
                if step.status == StepStatus::Succeeded && past_reset {
                    state.limited_until_ms = None;
                    state.limited_by = None;
                    state.limit_reason = None;
                }
            }
            _ => {}
        }
    }

    /// The account a run's calls count against, once its `RUN_CREATED` was applied.
    pub fn account_of(&self, run_id: RunId) -> Option<&str> {
        self.runs.get(&run_id).map(|run| run.account.as_str())
    }

    /// The run's `account_reserve_pct` (0 when it keeps none).
    pub fn reserve_of(&self, run_id: RunId) -> u32 {
        self.runs.get(&run_id).map_or(0, |run| run.reserve_pct)
    }

    /// The most calls the account admits at once: the smallest `account_concurrency` of its
    /// runs that have not ended, if any sets one.
    pub fn concurrency_of(&self, account: &str) -> Option<u32> {
        self.runs
            .values()
            .filter(|run| run.account == account && !run.ended && run.concurrency > 0)
            .map(|run| run.concurrency)
            .min()
    }

    /// The account's calls in flight, as the log shows them (open implementation and review
    /// steps of its runs).
    pub fn calls_in_flight(&self, account: &str) -> u32 {
        let open = self
            .runs
            .values()
            .filter(|run| run.account == account && run.in_call)
            .count();
        u32::try_from(open).unwrap_or(u32::MAX)
    }

    /// A run of the account whose call started at or after `since_ms` and is in flight: after
    /// a reset, the probe, as every node sees it in the log.
    pub fn probing(&self, account: &str, since_ms: i64) -> Option<RunId> {
        self.runs
            .iter()
            .filter(|(_, run)| {
                run.account == account && run.in_call && run.call_started_ms >= since_ms
            })
            .min_by_key(|(_, run)| run.call_started_ms)
            .map(|(id, _)| *id)
    }

    /// Whether the log shows a call of the run in flight.
    pub fn in_call(&self, run_id: RunId) -> bool {
        self.runs.get(&run_id).is_some_and(|run| run.in_call)
    }

    pub fn state(&self, account: &str) -> Option<&AccountState> {
        self.accounts.get(account)
    }

    /// Every account, by name.
    pub fn accounts(&self) -> impl Iterator<Item = (&str, &AccountState)> {
        self.accounts
            .iter()
            .map(|(name, state)| (name.as_str(), state))
    }

    /// The runs of an account.
    pub fn runs_of<'a>(&'a self, account: &'a str) -> impl Iterator<Item = RunId> + 'a {
        self.runs
            .iter()
            .filter(move |(_, run)| run.account == account)
            .map(|(run, _)| *run)
    }
}

/// Year × 12 + month of a Unix time in milliseconds, in UTC (civil-from-days).
fn month_of(ts_ms: i64) -> i64 {
    let days = ts_ms.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    year * 12 + month - 1
}

/// An account's spending caps, as a run's configuration gives them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Budget {
    pub per_day_usd: Option<f64>,
    pub per_month_usd: Option<f64>,
}

/// A cap the account has reached, and when the period it counts ends.
#[derive(Clone, Debug, PartialEq)]
pub struct OverBudget {
    /// `day` or `month` (UTC).
    pub period: &'static str,
    pub spent_usd: f64,
    pub cap_usd: f64,
    pub until_ms: i64,
}

impl OverBudget {
    pub fn reason(&self, account: &str) -> String {
        format!(
            "account budget: {account} spent ${:.2} this {} (UTC), its cap is ${:.2} \
             (account_budget_usd_per_{})",
            self.spent_usd, self.period, self.cap_usd, self.period
        )
    }
}

/// The cap `state` has reached at `now_ms`, if any: what was spent counts only in the day or
/// month it was spent in.
pub fn over_budget(state: &AccountState, budget: Budget, now_ms: i64) -> Option<OverBudget> {
    let today = now_ms.div_euclid(86_400_000);
    let month = month_of(now_ms);
    if let Some(cap) = budget.per_day_usd
        && state.day == today
        && state.spent_day_usd >= cap
    {
        return Some(OverBudget {
            period: "day",
            spent_usd: state.spent_day_usd,
            cap_usd: cap,
            until_ms: (today + 1) * 86_400_000,
        });
    }
    if let Some(cap) = budget.per_month_usd
        && state.month == month
        && state.spent_month_usd >= cap
    {
        return Some(OverBudget {
            period: "month",
            spent_usd: state.spent_month_usd,
            cap_usd: cap,
            until_ms: month_start_ms(month + 1),
        });
    }
    None
}

/// The first millisecond of a month numbered as [`month_of`] numbers them (days-from-civil).
fn month_start_ms(month: i64) -> i64 {
    let year = month.div_euclid(12);
    let m = month.rem_euclid(12) + 1;
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * 86_400_000
}

/// The account's reserve reached: the share of its rate-limit window a run keeps free
/// (`account_reserve_pct`) is in use, and the window resets then.
#[derive(Clone, Debug, PartialEq)]
pub struct InReserve {
    pub window: String,
    pub utilization: f64,
    pub until_ms: i64,
}

/// Whether starting a new iteration would eat into the reserve: the last window the account's
/// agent reported is used beyond `100 - reserve_pct` percent and has not reset yet.
pub fn in_reserve(state: &AccountState, reserve_pct: u32, now_ms: i64) -> Option<InReserve> {
    if reserve_pct == 0 {
        return None;
    }
    let window = state.window.as_ref()?;
    let utilization = window.utilization?;
    let until_ms = window.resets_at_ms?;
    let allowed = f64::from(100 - reserve_pct.min(100)) / 100.0;
    (utilization >= allowed && now_ms < until_ms).then(|| InReserve {
        window: window.window.clone().unwrap_or_else(|| "window".to_owned()),
        utilization,
        until_ms,
    })
}

/// Whether a run may start an agent call now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    Go,
    /// The account's limit resets then: no call before.
    WaitUntil(i64),
    /// The reset has passed and this run probes the account: it calls, and the others wait for
    /// what its call finds.
    Probe,
    /// Another run probes the account since the reset; wait for its answer.
    WaitForProbe(RunId),
}

/// What the account's state (and the run probing it since the reset, if any) allows `run`.
pub fn gate(state: &AccountState, probe: Option<RunId>, run: RunId, now_ms: i64) -> Gate {
    match state.limited_until_ms {
        None => Gate::Go,
        Some(until) if now_ms < until => Gate::WaitUntil(until),
        Some(_) => match probe {
            Some(probing) if probing != run => Gate::WaitForProbe(probing),
            _ => Gate::Probe,
        },
    }
}

/// A run waiting for a turn of its account's calls, and when it came: a number that grows
/// with each run that comes to wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiter {
    pub run_id: RunId,
    pub arrived: u64,
}

/// What [`turn`] decides for one waiting run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// It may call now.
    Go,
    /// It waits: `in_flight` of the `cap` calls are taken, and `ahead` waiting runs go first.
    Wait {
        in_flight: u32,
        cap: u32,
        ahead: usize,
    },
}

/// Whether `run`, one of `waiting`, may start its call: the account's cap less the calls in
/// flight (the log's, plus `granted` ones not in the log yet) leaves room, and no more waiting
/// runs than that room come before it. Runs come in the order of iterations started over
/// priority (so each takes a turn per round, a run of priority 2 two), then of how long they
/// have waited, then of id. Without a cap every run goes.
pub fn turn(
    book: &AccountBook,
    account: &str,
    waiting: &[Waiter],
    granted: u32,
    run: RunId,
) -> Turn {
    let Some(cap) = book.concurrency_of(account) else {
        return Turn::Go;
    };
    let in_flight = book.calls_in_flight(account) + granted;
    let room = cap.saturating_sub(in_flight) as usize;
    let mut line: Vec<&Waiter> = waiting.iter().collect();
    line.sort_by(|a, b| {
        let (a_run, b_run) = (book.runs.get(&a.run_id), book.runs.get(&b.run_id));
        // iterations_a / priority_a against iterations_b / priority_b, without division.
        let pass = |run: Option<&RunEntry>, other: Option<&RunEntry>| {
            u64::from(run.map_or(0, |r| r.iterations)) * u64::from(other.map_or(1, |r| r.priority))
        };
        pass(a_run, b_run)
            .cmp(&pass(b_run, a_run))
            .then(a.arrived.cmp(&b.arrived))
            .then_with(|| a.run_id.cmp(&b.run_id))
    });
    let ahead = line.iter().take_while(|w| w.run_id != run).count();
    if ahead < room {
        Turn::Go
    } else {
        Turn::Wait {
            in_flight,
            cap,
            ahead,
        }
    }
}

#[cfg(test)]
mod tests {
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
        };
        book.apply(&record(run, 2, 10, wait));
        let state = book.state("team").expect("team").clone();
        assert_eq!(state.limited_until_ms, Some(1_000));
        assert_eq!(gate(&state, None, run, 999), Gate::WaitUntil(1_000));
        assert_eq!(gate(&state, None, run, 1_000), Gate::Probe);
        let other = RunId::from_parts(2, [2; 10]);
        assert_eq!(
            gate(&state, Some(run), other, 1_000),
            Gate::WaitForProbe(run)
        );
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
        assert_eq!(month_of(0), 1970 * 12);
        // 2026-01-31T23:59:59Z and 2026-02-01T00:00:00Z.
        assert_eq!(month_of(1_769_903_999_000) + 1, month_of(1_769_904_000_000));
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
    fn a_budget_stops_at_its_cap_until_the_next_day_or_month() {
        // 2026-01-31T23:59:59Z and 2026-02-01T00:00:00Z.
        assert_eq!(
            month_start_ms(month_of(1_769_903_999_000) + 1),
            1_769_904_000_000
        );
        assert_eq!(month_start_ms(month_of(0)), 0);
        let run = RunId::from_parts(1, [1; 10]);
        let mut book = AccountBook::new();
        book.apply(&record(run, 1, 0, created("team")));
        let noon = 1_769_860_800_000; // 2026-01-31T12:00:00Z
        book.apply(&record(run, 2, noon, finished(StepStatus::Succeeded, 1.5)));
        let state = book.state("team").unwrap();
        let daily = Budget {
            per_day_usd: Some(1.0),
            per_month_usd: None,
        };
        let over = over_budget(state, daily, noon + 1).expect("over the daily cap");
        assert_eq!((over.period, over.until_ms), ("day", 1_769_904_000_000));
        assert!(over.reason("team").contains("account_budget_usd_per_day"));
        // The next day what was spent yesterday no longer counts.
        assert_eq!(over_budget(state, daily, 1_769_904_000_001), None);
        let monthly = Budget {
            per_day_usd: None,
            per_month_usd: Some(1.5),
        };
        let over = over_budget(state, monthly, noon + 1).expect("over the monthly cap");
        assert_eq!((over.period, over.until_ms), ("month", 1_769_904_000_000));
        assert_eq!(over_budget(state, Budget::default(), noon + 1), None);
    }

    #[test]
    fn a_reserve_holds_while_the_window_is_used_past_it_and_not_after_its_reset() {
        let mut state = AccountState::default();
        assert_eq!(in_reserve(&state, 10, 0), None, "no window seen");
        state.window = Some(RateLimitSeen {
            status: "allowed_warning".into(),
            window: Some("five_hour".into()),
            resets_at_ms: Some(5_000),
            utilization: Some(0.9),
            overage_in_use: None,
        });
        let held = in_reserve(&state, 10, 1_000).expect("90% used reaches a 10% reserve");
        assert_eq!((held.window.as_str(), held.until_ms), ("five_hour", 5_000));
        assert_eq!(
            in_reserve(&state, 5, 1_000),
            None,
            "a 5% reserve allows 95%"
        );
        assert_eq!(in_reserve(&state, 0, 1_000), None, "no reserve kept");
        assert_eq!(in_reserve(&state, 10, 5_000), None, "the window reset");
    }
}
