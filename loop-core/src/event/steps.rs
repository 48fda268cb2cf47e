//! The small closed sets events name: a step's phase and status, why a run ended, where its
//! name came from, where an artifact went, and how a postmortem ended.

use serde::{Deserialize, Serialize};

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
