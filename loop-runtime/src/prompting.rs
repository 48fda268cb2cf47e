//! The implementation prompt of an iteration: the custom template frozen into the run at submit
//! (`RunCreated::prompt_template`), the context files, the notes of the last verification and
//! review, the plan's next task and the watchdog's diagnosis.

use std::path::Path;

use loop_core::config::RunConfig;
use loop_core::event::{ChangesRequested, RunCreated, Signals};
use loop_core::experiment::Experiment;
use loop_core::experiment::prompt::{ExperimentInputs, experiment_prompt};
use loop_core::plan::Plan;
use loop_core::prompt::{self, ImplementationInputs};
use loop_core::watchdog;

use crate::artifacts::RunFiles;
use crate::error::RuntimeError;
use crate::request::{self, RunRequest};
use crate::run_context::in_workdir;

/// What an implementation prompt is read from.
#[derive(Debug)]
pub(crate) struct PromptSources<'a> {
    pub created: &'a RunCreated,
    pub config: &'a RunConfig,
    /// The run directory, whose notes the prompt points at; `None` before a run exists.
    pub files: Option<&'a RunFiles>,
    pub plan: Option<&'a Plan>,
    /// The signals of the last prompt rewrite, which later prompts keep addressing.
    pub rewrite_signal: Option<&'a Signals>,
    /// What a person asked to change after reviewing the run.
    pub changes_requested: Option<&'a ChangesRequested>,
}

pub(crate) fn implementation_prompt(sources: &PromptSources<'_>) -> String {
    // Frozen at submit from the person's checkout: never read from the worktree, where an
    // uncommitted template would be missing.
    let template = sources.created.prompt_template.clone();
    let context = &sources.config.context_files;
    let note = |name: &str| {
        let path = sources.files?.path(name);
        path.is_file().then(|| path.to_string_lossy().into_owned())
    };
    let runner_notes = note("runner-notes.txt");
    let review_notes = note("review-notes.txt");
    let mut text = prompt::implementation_prompt(&ImplementationInputs {
        spec_path: &sources.created.spec_path,
        plan_path: &sources.created.plan_path,
        template: template.as_deref(),
        context_files: context,
        runner_notes: runner_notes.as_deref(),
        review_notes: review_notes.as_deref(),
        task: sources.plan.and_then(Plan::next_task),
        changes_requested: sources.changes_requested,
    });
    if let Some(signals) = sources.rewrite_signal {
        text.push_str(&watchdog::diagnosis(&signals.0));
    }
    text
}

/// The prompt the first iteration of `request` would be sent, without creating a run
/// (what `loopctl prompt` prints).
pub async fn preview_prompt(request: &RunRequest) -> Result<String, RuntimeError> {
    let created = request::resolve(request, None)?;
    let config = RunConfig::from_frozen(&created.config);
    let workdir = Path::new(&created.workspace_root);
    let plan_text = tokio::fs::read_to_string(in_workdir(&created, workdir, &created.plan_path))
        .await
        .ok();
    let plan = plan_text.as_deref().map(Plan::parse);
    if let Some(settings) = &config.experiment {
        // The first iteration's prompt, as if the starting commit were measured already.
        return Ok(experiment_prompt(&ExperimentInputs {
            spec_path: &created.spec_path,
            template: created.prompt_template.as_deref(),
            context_files: &config.context_files,
            settings,
            experiment: &Experiment::default(),
            iteration: 1,
        }));
    }
    Ok(implementation_prompt(&PromptSources {
        created: &created,
        config: &config,
        files: None,
        plan: plan.as_ref(),
        rewrite_signal: None,
        changes_requested: None,
    }))
}
