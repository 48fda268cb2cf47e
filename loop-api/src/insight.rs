//! Knowing what happened: a run's postmortem and the figures across runs.

use loop_core::RunId;
use loop_core::event::PostmortemStatus;
use loop_core::projection::{ExperimentBrief, ExperimentTable};
use loop_core::stats::{DayOutcomes, Stats};
use serde::{Deserialize, Serialize};

/// The state of a run's postmortem and the files of its `analysis/` directory
/// (`GET /runs/{id}/postmortem`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PostmortemReport {
    pub run_id: RunId,
    /// `running`, then `ok`, `failed` or `skipped`; `None` before the first postmortem.
    pub status: Option<PostmortemState>,
    /// Why the last postmortem started (`run completed`, `on demand`, `prompt only`, …).
    pub started_because: Option<String>,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    /// The analysis directory (its primary copy).
    pub dir: String,
    /// Its files, sorted by name.
    pub files: Vec<AnalysisFile>,
}

/// Where a run's postmortem stands: under way, or how it ended. A closed set (the log's
/// [`PostmortemStatus`] plus `running`), written as the same lowercase strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PostmortemState {
    Running,
    Ok,
    Failed,
    Skipped,
}

impl PostmortemState {
    pub const fn as_str(self) -> &'static str {
        match self {
            PostmortemState::Running => "running",
            PostmortemState::Ok => "ok",
            PostmortemState::Failed => "failed",
            PostmortemState::Skipped => "skipped",
        }
    }
}

impl From<PostmortemStatus> for PostmortemState {
    fn from(ended: PostmortemStatus) -> PostmortemState {
        match ended {
            PostmortemStatus::Ok => PostmortemState::Ok,
            PostmortemStatus::Failed => PostmortemState::Failed,
            PostmortemStatus::Skipped => PostmortemState::Skipped,
        }
    }
}

impl std::fmt::Display for PostmortemState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One file of a run's `analysis/` directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AnalysisFile {
    pub name: String,
    pub bytes: u64,
}

/// `POST /runs/{id}/postmortem` (may be empty).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PostmortemBody {
    /// The model of the analyses: the run's review model unless given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Write the snapshots and the prompts only; ask no agent.
    #[serde(default)]
    pub prompt_only: bool,
}

/// `{"postmortem": PostmortemReport}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PostmortemEnvelope {
    pub postmortem: PostmortemReport,
}

/// `{"stats": Stats, "runs_by_day": [DayOutcomes]}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatsEnvelope {
    pub stats: Stats,
    /// The same runs by the UTC day they were created, oldest first, each under the status it
    /// stands in now; days without a run are left out. Absent from older daemons.
    #[serde(default)]
    pub runs_by_day: Vec<DayOutcomes>,
}

impl StatsEnvelope {
    /// The figures, with their series beside them.
    pub fn new(mut stats: Stats) -> StatsEnvelope {
        let runs_by_day = std::mem::take(&mut stats.runs_by_day);
        StatsEnvelope { stats, runs_by_day }
    }
}

/// An experiment's table and where it stands (`GET /runs/{id}/experiment`, `loopctl
/// experiment --json`): the rows of `experiments.tsv` under `rows`, the later measurements of
/// the starting commit under `rechecks`, and `summary.json`'s experiment section under
/// `summary`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExperimentReport {
    pub run_id: RunId,
    #[serde(flatten)]
    pub table: ExperimentTable,
    pub summary: ExperimentBrief,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire keeps the strings `status` had when it was a free string, each state reads
    /// back from its own, and an ended postmortem keeps the log's word for how it ended.
    #[test]
    fn postmortem_states_keep_their_strings_and_the_log_s_endings() {
        let all = [
            PostmortemState::Running,
            PostmortemState::Ok,
            PostmortemState::Failed,
            PostmortemState::Skipped,
        ];
        for state in all {
            let text = serde_json::to_value(state).unwrap();
            assert_eq!(text, serde_json::json!(state.as_str()));
            assert_eq!(
                serde_json::from_value::<PostmortemState>(text).unwrap(),
                state
            );
        }
        for ended in [
            PostmortemStatus::Ok,
            PostmortemStatus::Failed,
            PostmortemStatus::Skipped,
        ] {
            assert_eq!(PostmortemState::from(ended).as_str(), ended.as_str());
        }
        assert!(serde_json::from_value::<PostmortemState>(serde_json::json!("done")).is_err());
    }
}
