//! Figures across runs, straight from the log: how runs end, how many iterations a completed
//! run takes, what a task costs in time and money, how often verification passes, what the
//! watchdog saw, how long usage limits held runs up, and how often agent calls were retried.
//!
//! [`StatsFold`] takes events one at a time, in `seq` order within each run; runs may
//! interleave in any way (the result is the same), so a caller can feed the whole log or only
//! the runs it already knows are in scope. The clock arrives as an argument of
//! [`StatsFold::finish`], for runs still active or still waiting.
//!
//! Beside the totals, [`Stats::runs_by_day`] counts the same runs by the UTC day they were
//! created, each under the status it stands in now: how outcomes move over time.

mod experiments;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::{Event, EventRecord, Phase, StepStatus};
use crate::ids::RunId;
use crate::projection::add_cost;
use crate::state::RunStatus;
use crate::time::rfc3339_ms;

use self::experiments::RunExperiment;
pub use self::experiments::{ExperimentFigure, ExperimentStats};

/// A day in milliseconds: the buckets of [`Stats::runs_by_day`] are UTC days.
const DAY_MS: i64 = 86_400_000;

/// Which runs count: those created at or after `since_ms`, in `workspace_root`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub since_ms: Option<i64>,
    pub workspace_root: Option<String>,
}

impl Scope {
    fn admits(&self, created_ms: i64, workspace_root: &str) -> bool {
        self.since_ms.is_none_or(|since| created_ms >= since)
            && self
                .workspace_root
                .as_deref()
                .is_none_or(|root| root == workspace_root)
    }
}

/// A look-back like `7d`, `24h`, `90m`, `2w` or `30s`, in milliseconds (`--since`,
/// `?since=`).
pub fn parse_age(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not an age like 7d, 24h, 90m, 2w or 30s");
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(unit_at);
    let number: i64 = number.parse().map_err(|_| bad())?;
    let unit_ms: i64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return Err(bad()),
    };
    number.checked_mul(unit_ms).ok_or_else(bad)
}

/// The figures (`loopctl stats`, `GET /stats`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stats {
    pub since_ms: Option<i64>,
    pub workspace_root: Option<String>,
    pub runs: Outcomes,
    /// `completed_iteration` of the COMPLETED runs; `None` when none completed.
    pub iterations_to_completion: Option<Spread>,
    /// Plan tasks done, summed over the runs (each run's last count).
    pub tasks_done: u64,
    /// Time the runs were active (started or resumed, until paused or ended), summed.
    pub active_ms: u64,
    /// Agent cost reported by every step, summed.
    pub cost_usd: f64,
    /// `active_ms / tasks_done`; `None` with no task done.
    pub time_per_task_ms: Option<u64>,
    /// `cost_usd / tasks_done`; `None` with no task done.
    pub cost_per_task_usd: Option<f64>,
    pub verification: Verification,
    pub watchdog: Watchdog,
    pub usage_limits: UsageLimits,
    /// Agent calls retried (`AGENT_RETRY`).
    pub agent_retries: u64,
    /// The runs in experiment mode: their iterations and each one's metric. Left out of the
    /// JSON when there is none, so the figures of plan runs read as they always did.
    #[serde(default, skip_serializing_if = "ExperimentStats::is_empty")]
    pub experiments: ExperimentStats,
    /// The same runs by the UTC day they were created, oldest first; days without a run are
    /// left out. `GET /stats` serves it beside the figures (`runs_by_day` of its envelope);
    /// it is not part of the figures' own JSON, which `loopctl stats --json` prints and
    /// scripts already read.
    #[serde(skip)]
    pub runs_by_day: Vec<DayOutcomes>,
}

/// The runs created on one UTC day, each under the status it stands in now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DayOutcomes {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// The day's first millisecond (UTC).
    pub day_ms: i64,
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
    pub canceled: u64,
    /// PENDING, RUNNING or PAUSED.
    pub active: u64,
}

impl DayOutcomes {
    fn starting(day_ms: i64) -> DayOutcomes {
        let mut day = rfc3339_ms(day_ms);
        day.truncate("YYYY-MM-DD".len());
        DayOutcomes {
            day,
            day_ms,
            ..DayOutcomes::default()
        }
    }

    fn count(&mut self, status: RunStatus) {
        self.total += 1;
        match status {
            RunStatus::Completed => self.completed += 1,
            RunStatus::Failed => self.failed += 1,
            RunStatus::Canceled => self.canceled += 1,
            RunStatus::Pending | RunStatus::Running | RunStatus::Paused => self.active += 1,
        }
    }
}

/// How the runs in scope stand.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Outcomes {
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
    pub canceled: u64,
    /// PENDING, RUNNING or PAUSED.
    pub active: u64,
    /// The ended runs by `exit_reason` (`complete_plan`, `claude_failed`, …).
    pub by_exit_reason: BTreeMap<String, u64>,
}

/// A few figures of a list of whole numbers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Spread {
    pub count: u64,
    pub mean: f64,
    pub median: f64,
    pub min: u64,
    pub max: u64,
}

impl Spread {
    fn of(mut values: Vec<u64>) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        values.sort_unstable();
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2] as f64
        } else {
            (values[n / 2 - 1] + values[n / 2]) as f64 / 2.0
        };
        Some(Spread {
            count: n as u64,
            mean: round(values.iter().sum::<u64>() as f64 / n as f64, 4),
            median,
            min: values[0],
            max: values[n - 1],
        })
    }
}

/// Verification steps that passed and failed (canceled or interrupted ones do not count).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Verification {
    pub passed: u64,
    pub failed: u64,
    /// `passed / (passed + failed)`; `None` when none ran.
    pub pass_rate: Option<f64>,
}

/// What the watchdog saw and did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Watchdog {
    /// `WATCHDOG_SIGNAL`s by kind (`repeated_output`, `no_progress`, `malformed_token`,
    /// `stalled`).
    pub signals: BTreeMap<String, u64>,
    pub rewrites: u64,
    /// Runs it failed (`RUN_FAILED` whose reason starts with `watchdog:`).
    pub gave_up: u64,
}

/// Waits on agent usage limits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageLimits {
    pub waits: u64,
    /// Time spent waiting: each wait from its `AGENT_WAITING` until its `until_ms`, or until
    /// the run's next event when that came sooner (a cancel, a pause).
    pub waited_ms: u64,
}

/// One run's part of the figures.
#[derive(Clone, Debug)]
struct RunFacts {
    /// When its `RUN_CREATED` was recorded.
    created_ms: i64,
    status: RunStatus,
    exit_reason: Option<&'static str>,
    completed_iteration: Option<u32>,
    tasks_done: u32,
    cost_usd: f64,
    active_ms: u64,
    /// When the run last became active, while it is.
    active_since: Option<i64>,
    /// The open usage-limit wait: (since, until).
    waiting: Option<(i64, i64)>,
    waited_ms: u64,
    waits: u64,
    verification_passed: u64,
    verification_failed: u64,
    signals: BTreeMap<String, u64>,
    rewrites: u64,
    gave_up: bool,
    retries: u64,
    /// The run's experiment, when it is one.
    experiment: Option<RunExperiment>,
}

impl RunFacts {
    fn new(created_ms: i64) -> RunFacts {
        RunFacts {
            created_ms,
            status: RunStatus::Pending,
            exit_reason: None,
            completed_iteration: None,
            tasks_done: 0,
            cost_usd: 0.0,
            active_ms: 0,
            active_since: None,
            waiting: None,
            waited_ms: 0,
            waits: 0,
            verification_passed: 0,
            verification_failed: 0,
            signals: BTreeMap::new(),
            rewrites: 0,
            experiment: None,
            gave_up: false,
            retries: 0,
        }
    }

    fn apply(&mut self, record: &EventRecord) {
        if let Some(experiment) = &mut self.experiment {
            experiment.apply(record);
        }
        let at = record.ts_ms;
        if let Some((since, until)) = self.waiting.take() {
            self.waited_ms += span(since, until.min(at));
        }
        if let Some(cost) = record.event.paid().and_then(|paid| paid.cost_usd) {
            self.cost_usd = add_cost(self.cost_usd, cost);
        }
        match &record.event {
            Event::RunStarted(_) | Event::RunResumed(_) => {
                self.status = RunStatus::Running;
                self.active_since = Some(at);
            }
            Event::RunPaused(_) => {
                self.status = RunStatus::Paused;
                self.stop_active(at);
            }
            Event::RunRetried(_) | Event::ChangesRequested(_) => {
                self.status = RunStatus::Pending;
                self.exit_reason = None;
                self.completed_iteration = None;
                self.gave_up = false;
            }
            Event::RunCompleted(done) => {
                self.end(RunStatus::Completed, done.exit_reason.as_str(), at);
                self.completed_iteration = Some(done.completed_iteration);
            }
            Event::RunFailed(failed) => {
                self.end(RunStatus::Failed, failed.exit_reason.as_str(), at);
                self.gave_up = failed.watchdog_gave_up();
            }
            Event::RunCanceled(_) => self.end(RunStatus::Canceled, "canceled", at),
            Event::StepFinished(step) => {
                if let Some(done) = step.tasks_done {
                    self.tasks_done = done;
                }
                if step.phase == Phase::Verification {
                    match step.status {
                        StepStatus::Succeeded => self.verification_passed += 1,
                        StepStatus::Failed => self.verification_failed += 1,
                        _ => {}
                    }
                }
            }
            Event::AgentWaiting(wait) => {
                self.waits += 1;
                self.waiting = Some((at, wait.until_ms));
            }
            Event::AgentRetry(_) => self.retries += 1,
            Event::WatchdogSignal(signal) => {
                *self.signals.entry(signal.signal.to_string()).or_default() += 1;
            }
            Event::WatchdogRewrite(_) => self.rewrites += 1,
            _ => {}
        }
    }

    fn end(&mut self, status: RunStatus, exit_reason: &'static str, at: i64) {
        self.status = status;
        self.exit_reason = Some(exit_reason);
        self.stop_active(at);
    }

    fn stop_active(&mut self, at: i64) {
        if let Some(since) = self.active_since.take() {
            self.active_ms += span(since, at);
        }
    }
}

fn span(from: i64, to: i64) -> u64 {
    u64::try_from(to - from).unwrap_or(0)
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// The fold behind [`Stats`].
#[derive(Clone, Debug, Default)]
pub struct StatsFold {
    scope: Scope,
    /// Runs in scope. A run's scope is decided by its `RUN_CREATED`.
    runs: BTreeMap<RunId, RunFacts>,
    /// Runs seen and left out of scope, so their later events are skipped.
    outside: std::collections::BTreeSet<RunId>,
}

impl StatsFold {
    pub fn new(scope: Scope) -> StatsFold {
        StatsFold {
            scope,
            ..StatsFold::default()
        }
    }

    /// The figures of `records` (any interleaving of runs) as of `now_ms`.
    pub fn fold<'a>(
        scope: Scope,
        records: impl IntoIterator<Item = &'a EventRecord>,
        now_ms: i64,
    ) -> Stats {
        let mut fold = StatsFold::new(scope);
        for record in records {
            fold.apply(record);
        }
        fold.finish(now_ms)
    }

    /// Applies the next event of a run. A run whose first event is not `RUN_CREATED` (a log
    /// read from the middle) is left out.
    pub fn apply(&mut self, record: &EventRecord) {
        if let Some(facts) = self.runs.get_mut(&record.run_id) {
            facts.apply(record);
            return;
        }
        if self.outside.contains(&record.run_id) {
            return;
        }
        match &record.event {
            Event::RunCreated(created)
                if self.scope.admits(record.ts_ms, &created.workspace_root) =>
            {
                let mut facts = RunFacts::new(record.ts_ms);
                facts.experiment = RunExperiment::of(created);
                self.runs.insert(record.run_id, facts);
            }
            _ => {
                self.outside.insert(record.run_id);
            }
        }
    }

    /// The figures; runs still active count as active until `now_ms`, an open wait until
    /// `now_ms` or its end, whichever is sooner.
    pub fn finish(&self, now_ms: i64) -> Stats {
        let mut stats = Stats {
            since_ms: self.scope.since_ms,
            workspace_root: self.scope.workspace_root.clone(),
            ..Stats::default()
        };
        let mut iterations = Vec::new();
        let mut days: BTreeMap<i64, DayOutcomes> = BTreeMap::new();
        for (run_id, facts) in &self.runs {
            if let Some(experiment) = &facts.experiment {
                experiment.add_to(*run_id, &mut stats.experiments);
            }
            let day_ms = facts.created_ms.div_euclid(DAY_MS) * DAY_MS;
            days.entry(day_ms)
                .or_insert_with(|| DayOutcomes::starting(day_ms))
                .count(facts.status);
            let runs = &mut stats.runs;
            runs.total += 1;
            match facts.status {
                RunStatus::Completed => runs.completed += 1,
                RunStatus::Failed => runs.failed += 1,
                RunStatus::Canceled => runs.canceled += 1,
                RunStatus::Pending | RunStatus::Running | RunStatus::Paused => runs.active += 1,
            }
            if let Some(reason) = facts.exit_reason {
                *runs.by_exit_reason.entry(reason.to_owned()).or_default() += 1;
            }
            if facts.status == RunStatus::Completed
                && let Some(iteration) = facts.completed_iteration
            {
                iterations.push(u64::from(iteration));
            }
            stats.tasks_done += u64::from(facts.tasks_done);
            stats.active_ms += facts.active_ms
                + facts
                    .active_since
                    .map_or(0, |since| span(since, now_ms.max(since)));
            stats.cost_usd = add_cost(stats.cost_usd, facts.cost_usd);
            stats.verification.passed += facts.verification_passed;
            stats.verification.failed += facts.verification_failed;
            for (signal, n) in &facts.signals {
                *stats.watchdog.signals.entry(signal.clone()).or_default() += n;
            }
            stats.watchdog.rewrites += facts.rewrites;
            stats.watchdog.gave_up += u64::from(facts.gave_up);
            stats.usage_limits.waits += facts.waits;
            stats.usage_limits.waited_ms += facts.waited_ms
                + facts
                    .waiting
                    .map_or(0, |(since, until)| span(since, until.min(now_ms)));
            stats.agent_retries += facts.retries;
        }
        stats.iterations_to_completion = Spread::of(iterations);
        stats.runs_by_day = days.into_values().collect();
        stats.time_per_task_ms = stats.active_ms.checked_div(stats.tasks_done);
        if stats.tasks_done > 0 {
            stats.cost_per_task_usd = Some(round(stats.cost_usd / stats.tasks_done as f64, 6));
        }
        let verified = stats.verification.passed + stats.verification.failed;
        if verified > 0 {
            stats.verification.pass_rate =
                Some(round(stats.verification.passed as f64 / verified as f64, 4));
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_of_odd_and_even_counts() {
        assert_eq!(Spread::of(vec![]), None);
        let odd = Spread::of(vec![4, 1, 2]).unwrap();
        assert_eq!((odd.median, odd.min, odd.max, odd.count), (2.0, 1, 4, 3));
        assert_eq!(odd.mean, 2.3333);
        let even = Spread::of(vec![1, 2, 3, 10]).unwrap();
        assert_eq!((even.median, even.mean), (2.5, 4.0));
    }

    #[test]
    fn ages_in_their_units() {
        for (text, ms) in [
            ("7d", 7 * 86_400_000),
            ("24h", 86_400_000),
            ("90m", 5_400_000),
            ("2w", 1_209_600_000),
            ("30s", 30_000),
            (" 1d ", 86_400_000),
        ] {
            assert_eq!(parse_age(text), Ok(ms), "{text}");
        }
        for bad in ["", "7", "d", "7y", "-1d", "1.5d", "99999999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scope_admits_by_creation_time_and_workspace() {
        let scope = Scope {
            since_ms: Some(100),
            workspace_root: Some("/a".to_owned()),
        };
        assert!(scope.admits(100, "/a"));
        assert!(!scope.admits(99, "/a"));
        assert!(!scope.admits(200, "/b"));
        assert!(Scope::default().admits(0, "/anything"));
    }
}
