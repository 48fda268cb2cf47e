//! Agent accounts: what the log says of each account agent calls count against, and what a
//! run may do before its next call.
//!
//! A run names one account (`account`, resolved when it is created) or a pool of them
//! (`account_pool`); each agent call goes to one, and the log records which (`STEP_STARTED`,
//! `AGENT_RETRY` and `STEP_FINISHED` name it). A usage limit is the account's, not the run's:
//! once any call meets one (`AGENT_WAITING`, or an `AGENT_RETRY` that failed over), no call
//! goes to the account before the reset, and after it one run probes before the others
//! follow. A limit met in a model's own window (`seven_day_opus`) holds only that model's
//! calls. [`AccountBook`] folds the log into that state: limits, calls, spend, and every window
//! each account's agent reported, with the share of it one call of a model takes.
//!
//! [`before_call`] is the one decision before an agent call — limit, probe, budget, reserve
//! and pacing, turn, and which account of the pool — over the book and the run's typed
//! configuration; [`forecast`] says when each run is expected to finish and what binds it.

mod budget;
mod decide;
mod forecast;
mod turn;
pub mod window;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::config::RunConfig;
use crate::event::{Event, EventRecord, Phase, RateLimitSeen, StepStatus};
use crate::ids::{RunId, Version};

pub use budget::{Budget, OverBudget, over_budget};
pub use decide::{Ask, CallKind, Decision, Hold, Local, before_call};
pub use forecast::{Binding, RunForecast, forecast, forecasts};
pub use turn::{Turn, Waiter, turn};
pub use window::{Share, Window};

/// The account of a run whose configuration names none (logs older than accounts).
pub const UNNAMED: &str = "default";

/// A usage limit met on an account: no call it counts goes there before `until_ms`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Limit {
    pub until_ms: i64,
    /// The run whose call met it, and what the agent said.
    pub by: RunId,
    pub reason: String,
    /// The window that refused the call, when the agent said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

/// What the log says of one account.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AccountState {
    /// The reset time of the usage limit its calls last met in a window of every call, until a
    /// call succeeds after it.
    pub limited_until_ms: Option<i64>,
    /// The run that met it, and what the agent said.
    pub limited_by: Option<RunId>,
    pub limit_reason: Option<String>,
    /// Limits met in a model's own window, by model family (`opus`): they hold only that
    /// model's calls.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub model_limits: BTreeMap<String, Limit>,
    /// Usage limits its calls met, all told.
    pub limits_met: u64,
    /// Agent calls that finished a step or were answered with a limit or a retry.
    pub calls: u64,
    /// What its calls cost on the UTC day and in the UTC month of its latest paid call.
    pub spent_day_usd: f64,
    pub spent_month_usd: f64,
    /// Whether some of that is estimated from tokens (an agent that reports no cost).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub spent_estimated: bool,
    /// The rate-limit window its agent last reported.
    pub window: Option<RateLimitSeen>,
    /// Every window its agent reported, by name (`five_hour`, `seven_day`, `seven_day_opus`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub windows: BTreeMap<String, Window>,
    #[serde(skip)]
    pub(crate) day: i64,
    #[serde(skip)]
    pub(crate) month: i64,
}

impl AccountState {
    /// The limit holding calls of `model` (empty: the agent's default), if one was met and
    /// not cleared: the account-wide one, else the model family's.
    pub fn limit_for(&self, model: &str) -> Option<(i64, Option<&str>)> {
        let wide = self.limited_until_ms.map(|until| (until, None));
        let scoped = window::family(model)
            .and_then(|family| self.model_limits.get(family))
            .map(|limit| (limit.until_ms, limit.window.as_deref()));
        match (wide, scoped) {
            (Some(a), Some(b)) => Some(if a.0 >= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// Adds a paid call's cost at `ts_ms` to the day's and the month's spend.
    pub(crate) fn spend(&mut self, ts_ms: i64, cost: f64, estimated: bool) {
        let day = ts_ms.div_euclid(86_400_000);
        let month = budget::month_of(ts_ms);
        self.spent_day_usd = if day == self.day {
            self.spent_day_usd + cost
        } else {
            cost
        };
        self.spent_month_usd = if month == self.month {
            self.spent_month_usd + cost
        } else {
            cost
        };
        self.day = day;
        self.month = month;
        self.spent_estimated |= estimated;
    }

    fn hold(&mut self, limit: Limit) {
        match limit.window.as_deref().and_then(window::scope_of) {
            Some(family) => {
                self.model_limits.insert(family.to_owned(), limit);
            }
            None => {
                self.limited_until_ms = Some(limit.until_ms);
                self.limited_by = Some(limit.by);
                self.limit_reason = Some(limit.reason);
            }
        }
    }

    /// A call of `models` succeeded at `at_ms`: every limit it proves over is cleared. (One
    /// that succeeded before the reset began before the limit and proves nothing.)
    fn served(&mut self, models: &[String], at_ms: i64) {
        if self.limited_until_ms.is_some_and(|until| at_ms >= until) {
            self.limited_until_ms = None;
            self.limited_by = None;
            self.limit_reason = None;
        }
        let families: Vec<&str> = models.iter().filter_map(|m| window::family(m)).collect();
        self.model_limits.retain(|family, limit| {
            !(families.contains(&family.as_str()) && at_ms >= limit.until_ms)
        });
    }
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
    /// The accounts its calls may go to; the first is where its calls go when the log says
    /// nothing else.
    pool: Vec<String>,
    /// Whether it names a pool (`account_pool`), so [`before_call`] decides each of its calls,
    /// rather than one `account`.
    pooled: bool,
    /// The version of the run's last applied record.
    applied: Version,
    /// Its `account_concurrency` (0 = no cap) and `priority` (at least 1).
    concurrency: u32,
    priority: u32,
    /// The highest iteration it started an implementation call for.
    iterations: u32,
    /// The account of its agent call in flight (an open implementation or review step), and
    /// when the step started.
    in_call: Option<String>,
    call_started_ms: i64,
    /// The account of its latest call.
    last_account: Option<String>,
    /// Whether the run has ended; it no longer sets its account's cap.
    ended: bool,
    /// For the forecast: the plan's tasks as its last step saw them (before any step ends, as
    /// counted at submit), its implementation iterations finished, their time and cost, and
    /// when its latest started.
    tasks: Option<(u32, u32)>,
    iterations_done: u32,
    iteration_ms: u64,
    iteration_cost_usd: f64,
    started_ms: Option<i64>,
    max_cost_usd: Option<f64>,
    cost_usd: f64,
    /// Its implementation and review models, and whether it reviews.
    models: Vec<String>,
    reviewer: bool,
    reserve_pct: u32,
}

impl RunEntry {
    fn account(&self) -> &str {
        self.pool.first().map_or(UNNAMED, String::as_str)
    }
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
            let config = RunConfig::from_frozen(&created.config);
            let mut pool = config.accounts();
            if pool.is_empty() {
                pool.push(UNNAMED.to_owned());
            }
            for account in &pool {
                self.accounts.entry(account.clone()).or_default();
            }
            let models = [Phase::Implementation, Phase::Review]
                .iter()
                .map(|phase| config.model_for(*phase).to_owned())
                .collect();
            let entry = RunEntry {
                pool,
                pooled: !config.account_pool.is_empty(),
                applied: record.version,
                concurrency: config.account_concurrency.unwrap_or(0),
                priority: config.priority,
                iterations: 0,
                in_call: None,
                call_started_ms: 0,
                last_account: None,
                ended: false,
                tasks: created.tasks_done.zip(created.tasks_total),
                iterations_done: 0,
                iteration_ms: 0,
                iteration_cost_usd: 0.0,
                started_ms: None,
                max_cost_usd: config.max_cost_usd,
                cost_usd: 0.0,
                models,
                reviewer: config.reviewer,
                reserve_pct: config.account_reserve_pct,
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
        // A pool run's own wait holds no account and is no call: the holds it waits for are
        // in the log already (or, for a budget or a reserve, follow from it).
        if matches!(&record.event, Event::AgentWaiting(wait) if wait.pool_wait.is_some()) {
            return;
        }
        let ts_ms = record.ts_ms;
        // The account this record's call went to: the record's own, else the run's call in
        // flight, else its latest, else its first.
        let named = match &record.event {
            Event::StepStarted(step) => step.account.clone(),
            Event::StepFinished(step) => step.account.clone(),
            Event::AgentRetry(retry) => retry.account.clone(),
            Event::AgentWaiting(wait) => wait.account.clone(),
            _ => None,
        };
        let account = named
            .or_else(|| run.in_call.clone())
            .or_else(|| run.last_account.clone())
            .unwrap_or_else(|| run.account().to_owned());
        match &record.event {
            Event::StepStarted(step)
                if matches!(step.phase, Phase::Implementation | Phase::Review) =>
            {
                run.in_call = Some(account.clone());
                run.call_started_ms = ts_ms;
                if step.phase == Phase::Implementation {
                    run.iterations = run.iterations.max(step.iteration);
                    run.started_ms = Some(ts_ms);
                }
            }
            Event::StepFinished(step) => {
                run.in_call = None;
                if let (Some(done), Some(total)) = (step.tasks_done, step.tasks_total) {
                    run.tasks = Some((done, total));
                }
                if step.phase == Phase::Implementation {
                    run.iterations_done += 1;
                    run.iteration_ms += run
                        .started_ms
                        .map_or(step.duration_ms, |at| (ts_ms - at).max(0) as u64);
                }
            }
            Event::AgentRetry(retry) => {
                if let Some(next) = &retry.next_account {
                    run.in_call = Some(next.clone());
                }
            }
            Event::RunRetried(_) | Event::ChangesRequested(_) => run.ended = false,
            event if event.is_terminal() => {
                run.in_call = None;
                run.ended = true;
            }
            _ => {}
        }
        if matches!(
            record.event,
            Event::StepFinished(_) | Event::AgentRetry(_) | Event::AgentWaiting(_)
        ) {
            run.last_account = Some(account.clone());
        }
        let paid = record.event.paid();
        if let Some(cost) = paid.and_then(|paid| paid.cost_usd) {
            run.cost_usd += cost;
            if matches!(&record.event, Event::StepFinished(s) if s.phase == Phase::Implementation)
                || matches!(&record.event, Event::StepFinished(s) if s.phase == Phase::Review)
            {
                run.iteration_cost_usd += cost;
            }
        }
        let run_models = run.models.clone();
        let state = self.accounts.entry(account).or_default();
        if let Some(paid) = paid
            && let Some(cost) = paid.cost_usd
        {
            state.spend(ts_ms, cost, paid.cost_estimated);
        }
        match &record.event {
            // A usage limit is met by a call, inside its step; a budget stop is recorded outside
            // any step and costs no call.
            Event::AgentWaiting(wait) => {
                if wait.step_id.is_some() {
                    state.calls += 1;
                    state.limits_met += 1;
                }
                state.hold(Limit {
                    until_ms: wait.until_ms,
                    by: record.run_id,
                    reason: wait.reason.clone(),
                    window: wait.window.clone(),
                });
            }
            Event::AgentRetry(retry) => {
                state.calls += 1;
                if let Some(until_ms) = retry.limited_until_ms {
                    state.limits_met += 1;
                    state.hold(Limit {
                        until_ms,
                        by: record.run_id,
                        reason: retry.reason.clone(),
                        window: retry.window.clone(),
                    });
                }
            }
            Event::StepFinished(step)
                if matches!(step.phase, Phase::Implementation | Phase::Review) =>
            {
                state.calls += 1;
                let models = step
                    .agent
                    .as_ref()
                    .map(|agent| agent.models.clone())
                    .filter(|models| !models.is_empty())
                    .unwrap_or_else(|| {
                        let phase = usize::from(step.phase == Phase::Review);
                        vec![run_models[phase].clone()]
                    });
                if let Some(agent) = &step.agent {
                    let reported = if agent.windows.is_empty() {
                        agent.rate_limit.iter().cloned().collect()
                    } else {
                        agent.windows.clone()
                    };
                    for seen in &reported {
                        let name = seen.window.clone().unwrap_or_else(|| "window".to_owned());
                        state.windows.entry(name).or_default().observe(
                            seen,
                            models.first().map_or("", String::as_str),
                            ts_ms,
                        );
                    }
                    if let Some(last) = &agent.rate_limit {
                        state.window = Some(last.clone());
                    }
                }
                if step.status == StepStatus::Succeeded {
                    state.served(&models, ts_ms);
                }
            }
            _ => {}
        }
    }

    /// The account a run's calls count against when the log names none: its first.
    pub fn account_of(&self, run_id: RunId) -> Option<&str> {
        self.runs.get(&run_id).map(RunEntry::account)
    }

    /// The run's `account_reserve_pct` (0 when it keeps none).
    pub fn reserve_of(&self, run_id: RunId) -> u32 {
        self.runs.get(&run_id).map_or(0, |run| run.reserve_pct)
    }

    /// The accounts a run's calls may go to.
    pub fn pool_of(&self, run_id: RunId) -> &[String] {
        self.runs
            .get(&run_id)
            .map_or(&[], |run| run.pool.as_slice())
    }

    /// Whether the run names a pool of accounts (`account_pool`).
    pub fn pooled(&self, run_id: RunId) -> bool {
        self.runs.get(&run_id).is_some_and(|run| run.pooled)
    }

    /// The account of the run's call in flight, else of its latest call.
    pub fn current_account(&self, run_id: RunId) -> Option<&str> {
        let run = self.runs.get(&run_id)?;
        run.in_call.as_deref().or(run.last_account.as_deref())
    }

    /// The most calls the account admits at once: the smallest `account_concurrency` of the
    /// unfinished runs whose pool holds it, if any sets one.
    pub fn concurrency_of(&self, account: &str) -> Option<u32> {
        self.runs
            .values()
            .filter(|run| run.pool.iter().any(|a| a == account) && !run.ended)
            .filter(|run| run.concurrency > 0)
            .map(|run| run.concurrency)
            .min()
    }

    /// The account's calls in flight, as the log shows them.
    pub fn calls_in_flight(&self, account: &str) -> u32 {
        let open = self
            .runs
            .values()
            .filter(|run| run.in_call.as_deref() == Some(account))
            .count();
        u32::try_from(open).unwrap_or(u32::MAX)
    }

    /// A run whose call to the account started at or after `since_ms` and is in flight:
    /// after a reset, the probe, as every node sees it in the log.
    pub fn probing(&self, account: &str, since_ms: i64) -> Option<RunId> {
        self.runs
            .iter()
            .filter(|(_, run)| {
                run.in_call.as_deref() == Some(account) && run.call_started_ms >= since_ms
            })
            .min_by_key(|(_, run)| run.call_started_ms)
            .map(|(id, _)| *id)
    }

    /// Whether the log shows a call of the run in flight.
    pub fn in_call(&self, run_id: RunId) -> bool {
        self.runs
            .get(&run_id)
            .is_some_and(|run| run.in_call.is_some())
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

    /// The runs whose pool holds an account.
    pub fn runs_of<'a>(&'a self, account: &'a str) -> impl Iterator<Item = RunId> + 'a {
        self.runs
            .iter()
            .filter(move |(_, run)| run.pool.iter().any(|a| a == account))
            .map(|(run, _)| *run)
    }
}

#[cfg(test)]
mod tests;
