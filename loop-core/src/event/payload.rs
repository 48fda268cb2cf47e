//! The payload of each event type.
//!
//! Compatibility rule: a payload may gain fields, never lose or retype them. Every field added
//! after schema 1 is an `Option` or has a `#[serde(default)]`, so an event written by an older
//! binary still decodes (the fixtures in `tests/data/events/` hold such events). Unknown fields
//! are ignored, so an older binary can read a newer payload of a known type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::names::{Provider, ReviewKind};
use crate::ids::StepId;

/// The kind of work a step does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Phase {
    Implementation,
    Review,
    Verification,
    Watchdog,
    Merge,
    /// An experiment's candidate and best, measured alternately.
    Measurement,
    /// An experiment's starting commit, measured alone.
    Baseline,
}

/// Where a step stands. `QUEUED` and `IN_PROGRESS` are open; the rest are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum StepStatus {
    Queued,
    InProgress,
    Succeeded,
    Failed,
    Canceled,
    Interrupted,
}

impl StepStatus {
    pub const fn is_final(self) -> bool {
        !matches!(self, StepStatus::Queued | StepStatus::InProgress)
    }
}

/// Why a run ended, as written to `summary.json` and the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ExitReason {
    CompletePlan,
    CompleteReviewer,
    IterationsExhausted,
    /// Claude Code's calls failed for good.
    ClaudeFailed,
    /// Another agent's calls (Codex, a command) failed for good.
    AgentFailed,
    BudgetExhausted,
    Failed,
    Canceled,
    /// An experiment's best reached its `target`.
    TargetReached,
    /// An experiment went `patience` iterations without keeping a change.
    PatienceExhausted,
}

impl ExitReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            ExitReason::CompletePlan => "complete_plan",
            ExitReason::CompleteReviewer => "complete_reviewer",
            ExitReason::IterationsExhausted => "iterations_exhausted",
            ExitReason::ClaudeFailed => "claude_failed",
            ExitReason::AgentFailed => "agent_failed",
            ExitReason::BudgetExhausted => "budget_exhausted",
            ExitReason::Failed => "failed",
            ExitReason::Canceled => "canceled",
            ExitReason::TargetReached => "target_reached",
            ExitReason::PatienceExhausted => "patience_exhausted",
        }
    }
}

/// How the run's name was chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum NameSource {
    Haiku,
    #[default]
    SpecSlug,
    /// Given by the person (`--name`).
    Explicit,
}

impl NameSource {
    pub const fn as_str(self) -> &'static str {
        match self {
            NameSource::Haiku => "haiku",
            NameSource::SpecSlug => "spec_slug",
            NameSource::Explicit => "explicit",
        }
    }
}

/// Which copy of the run directory an artifact was written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactLocation {
    Workspace,
    Global,
}

/// How a postmortem ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostmortemStatus {
    Ok,
    Failed,
    Skipped,
}

impl PostmortemStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            PostmortemStatus::Ok => "ok",
            PostmortemStatus::Failed => "failed",
            PostmortemStatus::Skipped => "skipped",
        }
    }
}

/// Token counts an agent reported for one call (or several, summed).
///
/// `input` counts every input token the model read, cached or not; `cached` says how many of
/// them came from the prompt cache (Claude's cache reads, Codex's `cached_input_tokens`, which
/// Codex already counts in its `input_tokens`), and `cache_write` how many were written to it
/// (Claude's `cache_creation_input_tokens`, Codex's `cache_write_input_tokens`): they are
/// priced apart, so they are kept apart (absent in older events, where they are part of
/// `input` with nothing to tell them from fresh input). `output` counts every output token;
/// `reasoning` says how many of them were reasoning (Codex's `reasoning_output_tokens`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tokens {
    #[serde(default)]
    pub input: u64,
    #[serde(default)]
    pub output: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reasoning: u64,
}

impl Tokens {
    /// Both counts added, saturating.
    pub fn plus(self, other: Tokens) -> Tokens {
        Tokens {
            input: self.input.saturating_add(other.input),
            output: self.output.saturating_add(other.output),
            cached: self.cached.saturating_add(other.cached),
            cache_write: self.cache_write.saturating_add(other.cache_write),
            reasoning: self.reasoning.saturating_add(other.reasoning),
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What one paid agent call cost, recorded on the event that follows it: the `AGENT_RETRY` or
/// `AGENT_WAITING` it led to, the `RUN_NAMED` of a naming call, the `POSTMORTEM_END` of the
/// analyses. (A step's last call is on its `STEP_FINISHED`.) Absent on older events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Paid {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Tokens>,
    /// Whether `cost_usd` is estimated from the tokens and a price table (an agent that
    /// reports no cost, Codex), not the agent's own figure.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cost_estimated: bool,
}

impl Paid {
    /// Both calls' figures added; a figure neither call reported stays absent.
    pub fn plus(self, other: Paid) -> Paid {
        let add = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
        Paid {
            cost_estimated: self.cost_estimated || other.cost_estimated,
            cost_usd: add(self.cost_usd, other.cost_usd),
            tokens: match (self.tokens, other.tokens) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or_default().plus(b.unwrap_or_default())),
            },
        }
    }
}

/// The rate-limit window an agent reported during a call (Claude Code's `rate_limit_event`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RateLimitSeen {
    /// `allowed`, `allowed_warning` or `rejected`.
    pub status: String,
    /// `five_hour`, `seven_day`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// When the window resets, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resets_at_ms: Option<i64>,
    /// How much of the window is used, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization: Option<f64>,
    /// Whether the request was served from overage (paid beyond the plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overage_in_use: Option<bool>,
}

/// What an agent said of a step's calls beyond cost and tokens, for people reading the step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentDetail {
    /// The agent's session (Claude Code's session id, Codex's thread id) of the last call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The models the calls used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Agent calls made in the step (retries included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_turns: Option<u64>,
    /// Time spent waiting on the model's API, as the agent measured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_api_ms: Option<u64>,
    /// Tool uses the agent's permission settings refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_denials: Option<u64>,
    /// The last rate-limit window state the agent reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSeen>,
    /// The last state of each window the agent reported (five-hour, weekly, a model's weekly),
    /// when it reported more than one kind; absent in older events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<RateLimitSeen>,
}

/// A run is asked for: the request and its configuration, resolved and frozen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunCreated {
    pub name: String,
    #[serde(default)]
    pub name_source: NameSource,
    pub workspace_root: String,
    pub spec_path: String,
    pub plan_path: String,
    /// Every configuration key with its resolved value; later config changes never reach this run.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// The custom implementation prompt (`prompt_file`, else `.loop/prompt.txt`) as the
    /// person's checkout held it when the run was submitted: what `loopctl prompt` previews is
    /// what every iteration is sent, whatever the run's worktree holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_template: Option<String>,
    /// The plan's tasks done and in all when the run was submitted, so the run shows them
    /// before its first step ends; absent in older events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_done: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_total: Option<u32>,
}

/// The run got its final name (from a short agent call, or the spec slug when that failed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunNamed {
    pub name: String,
    pub name_source: NameSource,
    /// The naming call, when one was made.
    #[serde(flatten)]
    pub paid: Paid,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunStarted {}

/// A cluster node took the run to drive it: the first claim, or a takeover from a node whose
/// heartbeat stopped. Its lease lasts while the node's heartbeat is fresh (`lease_ms`); the
/// node's appends after another node's claim are refused by their expected version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunClaimed {
    pub node_id: String,
    /// How long after its last heartbeat the node's claim still holds.
    pub lease_ms: u64,
    /// The node whose claim this one replaces, when it is a takeover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_over_from: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunPaused {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A person asked the run to pause once its current step ends (`loopctl pause` without
/// `--now`): the agent's call in flight is not stopped, the driver records `RUN_PAUSED` before
/// starting the next step, or at once when no call is in flight (between steps, in a wait).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunPauseRequested {}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunResumed {}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunCanceled {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRetried {}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunCompleted {
    pub exit_reason: ExitReason,
    pub completed_iteration: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunFailed {
    pub exit_reason: ExitReason,
    /// Why, for people.
    pub reason: String,
    /// Why, for programs (notifications, figures); absent in events of older builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<FailureCause>,
}

/// What made a run fail, as data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailureCause {
    /// An agent call failed for good: `end` is how it ended (`auth`, `failed`, `transient`
    /// once the retries were spent, `usage_limit` when not waiting).
    Agent {
        end: String,
    },
    /// Verification failed this many times in a row.
    Verification {
        consecutive: u32,
    },
    /// The reviewer asked for changes this many times in a row.
    Review {
        consecutive: u32,
    },
    /// The watchdog's signals after its rewrites were spent.
    Watchdog {
        signals: Vec<String>,
        rewrites: u32,
    },
    IterationsExhausted {
        iterations: u32,
    },
    Budget {
        cost_usd: f64,
        max_usd: f64,
    },
    /// The merge on completion did not land: `conflict`, `verification`, `target_moved`,
    /// `target_dirty`, `target_untracked`, …
    Merge {
        code: String,
    },
    /// The run's worktree or directory could not be made.
    Setup,
    /// The runtime itself failed (an I/O error, a log that does not fold).
    Runtime,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorktreeProviderSelected {
    pub provider: Provider,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorktreeCreated {
    pub provider: Provider,
    pub path: String,
    pub base_branch: String,
    pub run_branch: String,
    #[serde(default)]
    pub reused: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorktreeRemoved {
    pub path: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepStarted {
    pub step_id: StepId,
    pub phase: Phase,
    pub iteration: u32,
    #[serde(default = "one")]
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_path: Option<String>,
    /// The agent session the step's call runs in, for agents whose session the runtime names
    /// (Claude Code): a step interrupted by a crash, a pause or a shutdown goes on with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Whether `session_id` is an interrupted step's session, continued (`claude --resume`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub resumed: bool,
    /// The account the step's first call goes to (absent before account pools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn one() -> u32 {
    1
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepFinished {
    pub step_id: StepId,
    pub phase: Phase,
    pub status: StepStatus,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub output_path: Option<String>,
    #[serde(default)]
    pub output_bytes: u64,
    #[serde(default)]
    pub output_lines: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Tokens>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// The plan's state observed when the step ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_done: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_total: Option<u32>,
    /// A one-line explanation for people (why it failed, what the reviewer said).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `HEAD` of the working tree when the step ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_commit: Option<String>,
    /// SHA-256 of the plan file when the step ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_sha256: Option<String>,
    /// SHA-256 of the agent's answer with whitespace runs collapsed, to spot a repeated answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_sha256: Option<String>,
    /// What the agent said of its calls (session, models, turns, rate-limit window); boxed,
    /// so that every other event stays small.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Box<AgentDetail>>,
    /// The account that served the step's last call (absent before account pools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Whether `cost_usd` is estimated from the tokens and a price table.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cost_estimated: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentRetry {
    pub step_id: StepId,
    pub attempt: u32,
    pub delay_ms: u64,
    pub reason: String,
    /// Which retry of its budget this is; absent when the retry is charged to none (a session
    /// started afresh) and in older events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<RetryCount>,
    /// The call that is being retried.
    #[serde(flatten)]
    pub paid: Paid,
    /// The account the call went to (absent before account pools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// When the call met that account's usage limit and another account of the run's pool
    /// had room: the limit's reset (plus margin). The account is held until then, as by an
    /// `AGENT_WAITING`, and the call goes on at once on `next_account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limited_until_ms: Option<i64>,
    /// The window that refused it (`five_hour`, `seven_day_opus`, …), when the agent said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// The account the next call goes to, when not `account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_account: Option<String>,
    /// Which of the step's retry budgets the retry spends; absent when it spends none (a
    /// session that could not go on, a failover) and in older events. A step run again after a
    /// crash or a restart goes on with what its earlier attempts spent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<RetryBudget>,
}

/// A step's two retry budgets (`policy::after_call`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryBudget {
    /// Rate limits, overload, server and network errors (`transient_retries`).
    Transient,
    /// Error results and crashes (`claude_retries`).
    Failed,
}

/// The `n`th retry (from 1) of the `of` its budget allows (`transient_retries` for a transient
/// end, `claude_retries` for a failed call): what a person reads as "retry 3/8".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryCount {
    pub n: u32,
    pub of: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentWaiting {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<StepId>,
    pub until_ms: i64,
    pub reason: String,
    /// The call that met the limit (a refused call usually costs nothing).
    #[serde(flatten)]
    pub paid: Paid,
    /// The account held (absent before account pools: the run's account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The window that refused the call, when the agent said: a model's own window
    /// (`seven_day_opus`) holds only that model's calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerificationCommand {
    pub step_id: StepId,
    pub command: String,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompletionDetected {
    pub iteration: u32,
    /// The commit the final verification passed at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompletionRejected {
    pub iteration: u32,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WatchdogSignal {
    pub iteration: u32,
    /// The kind of signal (`repeated_output`, `no_progress`, `malformed_token`, `stalled`).
    pub signal: String,
    #[serde(default)]
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WatchdogRewrite {
    pub signal: String,
    /// Paths of the prompt files before and after the rewrite.
    pub prompt_before: String,
    pub prompt_after: String,
}

/// The merge on completion is about to land: the merged and verified commit, and the target's
/// commit it was made onto. Recorded by the node that holds the run's claim, at its claim's
/// version, before the target moves (specs/event-log.md, "Effects and their fences"): a node
/// that takes the run over finds it here and learns from the target itself whether it landed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MergeStarted {
    /// The merge step it belongs to.
    pub step_id: StepId,
    pub target: String,
    pub strategy: String,
    /// The target's commit the merge was made onto; `None` when the target did not exist yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onto: Option<String>,
    /// The commit the target moves to.
    pub commit: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MergeFinished {
    pub strategy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArtifactWritten {
    pub kind: String,
    pub path: String,
    pub location: ArtifactLocation,
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PostmortemStart {
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PostmortemEnd {
    pub status: PostmortemStatus,
    /// Why it failed or was skipped, in words (which analysis, what the agent said).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The analyses' calls, summed.
    #[serde(flatten)]
    pub paid: Paid,
}

/// A person acted on a finished run: merge, scrap or create_pr (older builds recorded diff).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReviewAction {
    pub action: ReviewKind,
    /// What the action produced (a commit, a PR address, a conflict), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detail: BTreeMap<String, String>,
}
