//! The API's `Run`: one row per run, kept current by every event of the run.

use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::event::{Event, EventRecord, ExitReason, NameSource, Phase, ReviewKind};
use crate::ids::{RunId, Seq, StepId, Version};
use crate::state::RunStatus;
use crate::time::rfc3339_ms;

/// The run as the API shows it (`contract.md` §3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Run))]
pub struct RunView {
    pub id: RunId,
    pub name: String,
    pub name_source: NameSource,
    pub status: RunStatus,
    pub workspace_root: String,
    pub spec_path: String,
    pub plan_path: String,
    pub created_at: String,
    pub updated_at: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub worktree: WorktreeView,
    /// The implementation iteration reached.
    pub iteration: u32,
    pub tasks_done: u32,
    pub tasks_total: u32,
    pub current_step: Option<CurrentStep>,
    pub exit_reason: Option<ExitReason>,
    /// Why a FAILED run failed, in words.
    pub failure_reason: Option<String>,
    pub cost_usd: f64,
    /// `running`, then `ok`, `failed` or `skipped`, once a postmortem has started.
    pub postmortem: Option<String>,
    pub last_seq: Seq,
    pub version: Version,
    /// Why the run is not moving now, when it waits: on a usage limit (from the log), or, added
    /// when the runtime answers, for a free slot, a busy workspace or a log that refuses writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
    /// The last merge of the run's branch (on completion or asked for), once one was tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<MergeView>,
    /// In cluster mode, the node whose claim on the run is the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// A pause was asked for once the current step ends (`loopctl pause` without `--now`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pause_requested: bool,
    /// What each kind of paid call cost: the steps' agent calls (retries and waits included),
    /// the naming call, the postmortem's analyses; they add up to `cost_usd`.
    #[serde(default)]
    pub costs: Costs,
}

/// A run's cost by kind of call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Costs {
    pub steps_usd: f64,
    pub naming_usd: f64,
    pub postmortem_usd: f64,
}

/// How the last merge of a run's branch went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MergeView {
    /// Whether the branch is in the target now.
    pub landed: bool,
    /// The target's new commit, when it landed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Why it did not land (a conflict, a failing check, a checkout with changes), and that
    /// `loopctl merge` tries again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Why a run waits, as data: a closed set, so that each front end says something for each (the
/// JSON is the snake_case name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WaitCode {
    /// The agent said its usage limit is reached; the run waits for the reset (from the log).
    UsageLimit,
    /// The run's account spent its daily or monthly budget (from the log).
    AccountBudget,
    /// The run's account is held by a limit another run met.
    AccountLimit,
    /// The account's window is used past the share this run keeps free.
    AccountReserve,
    /// After a limit's reset, another run of the account calls first.
    AccountProbe,
    /// The account's calls at once are taken; the run waits its turn.
    AccountTurn,
    /// PENDING: every slot of the daemon is taken.
    WaitingForSlot,
    /// PENDING: another run executes in the same workspace.
    WorkspaceBusy,
    /// PENDING: the scheduler starts it next.
    Queued,
    /// The event log refuses writes.
    StoreUnavailable,
    /// A step's files met a full disk; the run goes on when space is back.
    StorageFull,
    /// A code this build does not know (a newer daemon's): a client still shows the reason.
    #[serde(other)]
    Unknown,
}

impl WaitCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            WaitCode::UsageLimit => "usage_limit",
            WaitCode::AccountBudget => "account_budget",
            WaitCode::AccountLimit => "account_limit",
            WaitCode::AccountReserve => "account_reserve",
            WaitCode::AccountProbe => "account_probe",
            WaitCode::AccountTurn => "account_turn",
            WaitCode::WaitingForSlot => "waiting_for_slot",
            WaitCode::WorkspaceBusy => "workspace_busy",
            WaitCode::Queued => "queued",
            WaitCode::StoreUnavailable => "store_unavailable",
            WaitCode::StorageFull => "storage_full",
            WaitCode::Unknown => "unknown",
        }
    }

    /// Whether the run's agent account holds it (the account's limit, budget, reserve, probe or
    /// turn), as opposed to the agent's own answer or the daemon's queue.
    pub const fn is_account_hold(self) -> bool {
        matches!(
            self,
            WaitCode::AccountBudget
                | WaitCode::AccountLimit
                | WaitCode::AccountReserve
                | WaitCode::AccountProbe
                | WaitCode::AccountTurn
        )
    }
}

impl std::fmt::Display for WaitCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for WaitCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for WaitCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

/// Why a recorded wait holds its run: a limit met by its call (inside its step), a
/// one-account budget stop (outside any step), or what holds a pool run's whole pool.
pub fn wait_code(wait: &crate::event::AgentWaiting) -> WaitCode {
    use crate::event::PoolWait;
    match (wait.pool_wait, wait.step_id) {
        (Some(PoolWait::Limit), _) => WaitCode::AccountLimit,
        (Some(PoolWait::Budget), _) => WaitCode::AccountBudget,
        (Some(PoolWait::Reserve), _) => WaitCode::AccountReserve,
        (Some(PoolWait::Unknown), _) => WaitCode::Unknown,
        (None, Some(_)) => WaitCode::UsageLimit,
        (None, None) => WaitCode::AccountBudget,
    }
}

/// What a run waits for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Waiting {
    pub code: WaitCode,
    /// For people.
    pub reason: String,
    /// When the wait ends, if known (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
}

impl Waiting {
    pub fn new(code: WaitCode, reason: impl Into<String>) -> Waiting {
        Waiting {
            code,
            reason: reason.into(),
            until: None,
            until_ms: None,
        }
    }

    pub fn until(mut self, until_ms: i64) -> Waiting {
        self.until = Some(rfc3339_ms(until_ms));
        self.until_ms = Some(until_ms);
        self
    }
}

/// Where the run works.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorktreeView {
    pub base_branch: Option<String>,
    pub run_branch: Option<String>,
    pub merge_target_branch: Option<String>,
    pub merge_strategy: String,
    pub worktree_path: Option<String>,
    pub provider: Option<String>,
    pub removed: bool,
}

/// The step in progress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CurrentStep {
    pub id: StepId,
    pub phase: Phase,
    pub iteration: u32,
    pub attempt: u32,
}

/// Adds a cost, rounded to 1e-10 dollars so sums of decimal prices read as decimals.
pub fn add_cost(total: f64, cost: f64) -> f64 {
    ((total + cost) * 1e10).round() / 1e10
}

impl RunView {
    /// The view a run's first event creates; `None` when the record is not `RUN_CREATED`.
    pub fn created(record: &EventRecord) -> Option<RunView> {
        let Event::RunCreated(created) = &record.event else {
            return None;
        };
        let at = rfc3339_ms(record.ts_ms);
        let config = RunConfig::from_frozen(&created.config);
        Some(RunView {
            id: record.run_id,
            name: created.name.clone(),
            name_source: created.name_source,
            status: RunStatus::Pending,
            workspace_root: created.workspace_root.clone(),
            spec_path: created.spec_path.clone(),
            plan_path: created.plan_path.clone(),
            created_at: at.clone(),
            updated_at: at,
            created_ms: record.ts_ms,
            updated_ms: record.ts_ms,
            worktree: WorktreeView {
                base_branch: config.base_branch,
                run_branch: None,
                merge_target_branch: config.merge_target_branch,
                merge_strategy: config.merge_strategy.as_str().to_owned(),
                worktree_path: None,
                provider: None,
                removed: false,
            },
            iteration: 0,
            // The plan as it was when the run was submitted, until a step observes it.
            tasks_done: created.tasks_done.unwrap_or(0),
            tasks_total: created.tasks_total.unwrap_or(0),
            current_step: None,
            exit_reason: None,
            failure_reason: None,
            cost_usd: 0.0,
            postmortem: None,
            last_seq: record.seq,
            version: record.version,
            waiting: None,
            merge: None,
            node: None,
            pause_requested: false,
            costs: Costs::default(),
        })
    }

    /// Folds a run's events in order; `None` when the first is not `RUN_CREATED`.
    pub fn fold<'a>(records: impl IntoIterator<Item = &'a EventRecord>) -> Option<RunView> {
        let mut records = records.into_iter();
        let mut view = RunView::created(records.next()?)?;
        for record in records {
            view.apply(record);
        }
        Some(view)
    }

    /// Applies the run's next event.
    pub fn apply(&mut self, record: &EventRecord) {
        self.updated_ms = record.ts_ms;
        self.updated_at = rfc3339_ms(record.ts_ms);
        self.last_seq = record.seq;
        self.version = record.version;
        // A wait lasts until the run does something else (artifacts are written on the side, and
        // a node taking the run over goes on waiting).
        if !matches!(
            record.event,
            Event::ArtifactWritten(_) | Event::RunClaimed(_) | Event::RunPauseRequested(_)
        ) {
            self.waiting = None;
        }
        if crate::state::releases_claim(&record.event) {
            self.node = None;
        }
        if let Some(cost) = record.event.paid().and_then(|paid| paid.cost_usd) {
            self.cost_usd = add_cost(self.cost_usd, cost);
            let kind = match &record.event {
                Event::RunNamed(_) => &mut self.costs.naming_usd,
                Event::PostmortemEnd(_) => &mut self.costs.postmortem_usd,
                _ => &mut self.costs.steps_usd,
            };
            *kind = add_cost(*kind, cost);
        }
        if record.event.is_terminal() || matches!(record.event, Event::RunPaused(_)) {
            self.pause_requested = false;
        }
        match &record.event {
            Event::RunCreated(_) => {}
            Event::RunNamed(named) => {
                self.name.clone_from(&named.name);
                self.name_source = named.name_source;
            }
            Event::RunClaimed(claimed) => self.node = Some(claimed.node_id.clone()),
            Event::RunStarted(_) | Event::RunResumed(_) => self.status = RunStatus::Running,
            Event::RunPaused(_) => self.status = RunStatus::Paused,
            Event::RunPauseRequested(_) => self.pause_requested = true,
            Event::RunRetried(_) | Event::ChangesRequested(_) => {
                self.status = RunStatus::Pending;
                self.exit_reason = None;
                self.failure_reason = None;
            }
            Event::RunCompleted(completed) => {
                self.status = RunStatus::Completed;
                self.exit_reason = Some(completed.exit_reason);
            }
            Event::RunFailed(failed) => {
                self.status = RunStatus::Failed;
                self.exit_reason = Some(failed.exit_reason);
                self.failure_reason = Some(failed.reason.clone());
            }
            Event::RunCanceled(_) => {
                self.status = RunStatus::Canceled;
                self.exit_reason = Some(ExitReason::Canceled);
            }
            Event::WorktreeProviderSelected(selected) => {
                self.worktree.provider = Some(selected.provider.to_string());
            }
            Event::WorktreeCreated(created) => {
                self.worktree.provider = Some(created.provider.to_string());
                self.worktree.worktree_path = Some(created.path.clone());
                self.worktree.base_branch = Some(created.base_branch.clone());
                self.worktree.run_branch = Some(created.run_branch.clone());
                self.worktree.removed = false;
            }
            Event::WorktreeRemoved(_) => self.worktree.removed = true,
            Event::StepStarted(step) => {
                if step.phase == Phase::Implementation {
                    self.iteration = self.iteration.max(step.iteration);
                }
                self.current_step = Some(CurrentStep {
                    id: step.step_id,
                    phase: step.phase,
                    iteration: step.iteration,
                    attempt: step.attempt,
                });
            }
            Event::StepFinished(step) => {
                self.current_step = None;
                if let Some(done) = step.tasks_done {
                    self.tasks_done = done;
                }
                if let Some(total) = step.tasks_total {
                    self.tasks_total = total;
                }
            }
            Event::PostmortemStart(_) => self.postmortem = Some("running".to_owned()),
            Event::PostmortemEnd(end) => {
                self.postmortem = Some(end.status.as_str().to_owned());
            }
            Event::AgentWaiting(wait) => {
                self.waiting =
                    Some(Waiting::new(wait_code(wait), wait.reason.clone()).until(wait.until_ms));
            }
            Event::MergeFinished(merge) => {
                self.merge = Some(MergeView {
                    landed: merge.commit.is_some(),
                    commit: merge.commit.clone(),
                    problem: merge.conflict.clone(),
                });
            }
            Event::ReviewAction(action) if action.action == ReviewKind::Merge => {
                let commit = action.detail.get("commit").cloned();
                self.merge = Some(MergeView {
                    landed: commit.is_some(),
                    commit,
                    problem: action.detail.get("conflict").cloned(),
                });
            }
            Event::AgentRetry(_)
            | Event::VerificationCommand(_)
            | Event::CompletionDetected(_)
            | Event::CompletionRejected(_)
            | Event::WatchdogSignal(_)
            | Event::WatchdogRewrite(_)
            | Event::MergeStarted(_)
            | Event::ArtifactWritten(_)
            | Event::ReviewAction(_)
            | Event::ExperimentBaseline(_)
            | Event::ExperimentMeasured(_)
            | Event::ExperimentDecided(_)
            | Event::ReviewComment(_) => {}
        }
    }
}
