//! loopctl's own `--json` documents: what a command prints that the API has no type for (the
//! API's envelopes come from `loop_api`). Typed, so a document cannot lose a field to a typo.

use std::collections::BTreeMap;
use std::path::Path;

use loop_api::meta::Artifact;
use loop_api::review::RunWorktree;
use loop_core::projection::{RunView, StepView};
use loop_runtime::PostmortemReport;
use serde::Serialize;

/// `inspect`: the run, its steps, its files and where they are.
#[derive(Debug, Serialize)]
pub struct Inspection<'a> {
    pub run: &'a RunView,
    pub steps: &'a [StepView],
    pub artifacts: &'a [Artifact],
    pub run_dir: Option<&'a Path>,
    /// An experiment's standing (`summary.json`'s `experiment` section); absent for a plan's run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<&'a loop_core::projection::ExperimentBrief>,
}

/// `demo`: the run, as `run --wait` prints it, and where the demo's files are.
#[derive(Debug, Serialize)]
pub struct Demo<'a> {
    pub run: &'a RunView,
    pub repository: &'a Path,
    pub run_dir: &'a Path,
    pub event_log: &'a Path,
}

/// `worktree-rm`: the worktree removed.
#[derive(Debug, Serialize)]
pub struct Removed {
    pub removed: RunWorktree,
}

/// `prompt`: the implementation prompt.
#[derive(Debug, Serialize)]
pub struct Prompt<'a> {
    pub prompt: &'a str,
}

/// `export`: the files written from the log.
#[derive(Debug, Serialize)]
pub struct Exported {
    pub run_id: String,
    pub events: usize,
    pub files: Vec<String>,
}

/// `migrate`: what was copied, and how the copy compares.
#[derive(Debug, Serialize)]
pub struct Migrated<'a> {
    pub from: String,
    pub to: String,
    pub events: u64,
    pub runs: u64,
    pub differences: &'a [String],
    pub replay_differences: usize,
}

/// `init`: the files written or left, and the log directory's exclusion.
#[derive(Debug, Serialize)]
pub struct Initialized<'a, F: Serialize, E: Serialize> {
    pub config: &'a F,
    pub spec: Option<&'a F>,
    pub plan: Option<&'a F>,
    pub exclude: &'a E,
}

/// `analyze`: the postmortem, its summary analysis, and with `--prompt-only` the prompts.
#[derive(Debug, Serialize)]
pub struct Analyzed<'a> {
    pub postmortem: &'a PostmortemReport,
    pub summary: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompts: Option<BTreeMap<&'static str, &'a str>>,
}
