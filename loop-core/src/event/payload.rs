//! The payload of each event type.
//!
//! Compatibility rule: a payload may gain fields, never lose or retype them. Every field added
//! after schema 1 is an `Option` or has a `#[serde(default)]`, so an event written by an older
//! binary still decodes (the fixtures in `tests/data/events/` hold such events). Unknown fields
//! are ignored, so an older binary can read a newer payload of a known type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::names::{MergeCode, Provider, ReviewKind, Signal, Signals};
use crate::ids::StepId;

pub use super::paid::{AgentDetail, Paid, RateLimitSeen, Tokens};
pub use super::steps::{
    ArtifactLocation, ExitReason, NameSource, Phase, PostmortemStatus, StepStatus,
};

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
        signals: Vec<Signal>,
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
        code: MergeCode,
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
    /// Set when the wait is the run's, not the account's: every account of its pool is held
    /// (by a limit already in the log, a budget or a reserve) and the run waits for the
    /// earliest end, `until_ms`, of `account`'s hold. Such a wait holds no account and is no
    /// call; absent on a limit met by a call and on a one-account budget stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_wait: Option<PoolWait>,
}

/// What holds every account of a pool run's pool, for the hold whose end it waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolWait {
    /// A usage limit met before (by this run or another), until its reset.
    Limit,
    /// The account's spend reached the run's daily or monthly cap.
    Budget,
    /// A window used up to the share the run keeps free, until it resets.
    Reserve,
    /// A kind this build does not know (a newer daemon's).
    #[serde(other)]
    Unknown,
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
    /// `HEAD` of the run's working directory (its worktree, or the workspace itself without
    /// one) as the implementation step whose answer claimed completion ended: the commit the
    /// claim is about. It is recorded before the review and verification that judge the claim
    /// (a `COMPLETION_REJECTED` or `RUN_COMPLETED` follows), so it says nothing of whether they
    /// passed. `None` when there was no commit to read (not a git checkout, or no commit yet).
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
    pub signal: Signal,
    #[serde(default)]
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WatchdogRewrite {
    /// The signals the rewrite answers.
    pub signal: Signals,
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
