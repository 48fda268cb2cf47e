//! What the agent is told in an experiment: the goal, the measurement, the best so far, and
//! the history of what was tried (idea, effect, kept or not), so that a loop of any length
//! does not try the same idea twice or forget why one failed.

use crate::config::choice::Goal;
use crate::config::experiment::ExperimentConfig;
use crate::event::Decision;
use crate::experiment::fold::Experiment;
use crate::experiment::{figure, interval_text, percent};

/// The most recent decisions the prompt lists one by one; older ones are counted.
pub const HISTORY_ROWS: usize = 40;

/// Everything an experiment's implementation prompt is built from.
#[derive(Clone, Copy, Debug)]
pub struct ExperimentInputs<'a> {
    /// As the agent sees it from its working directory.
    pub spec_path: &'a str,
    /// A custom template (`prompt_file` or `.loop/prompt.txt`) with a `SPEC_PATH` placeholder;
    /// the experiment's section follows it. `None` for the default prompt.
    pub template: Option<&'a str>,
    pub context_files: &'a [String],
    pub settings: &'a ExperimentConfig,
    pub experiment: &'a Experiment,
    /// The iteration this prompt is for.
    pub iteration: u32,
}

/// The implementation prompt of an experiment's iteration.
pub fn experiment_prompt(inputs: &ExperimentInputs<'_>) -> String {
    let mut prompt = match inputs.template {
        Some(template) => template.replace("SPEC_PATH", inputs.spec_path),
        None => format!(
            "You are improving a measured number, one idea per iteration. What to improve and \
             what must not change are in the spec:\n@{}\n",
            inputs.spec_path
        ),
    };
    if !prompt.ends_with('\n') {
        prompt.push('\n');
    }
    if !inputs.context_files.is_empty() {
        prompt.push_str("\nRead these files for context before you start:\n");
        for path in inputs.context_files {
            prompt.push_str(&format!("@{path}\n"));
        }
    }
    prompt.push('\n');
    prompt.push_str(&section(
        inputs.settings,
        inputs.experiment,
        inputs.iteration,
    ));
    if inputs.template.is_none() {
        prompt.push_str(INSTRUCTIONS);
    }
    prompt
}

const INSTRUCTIONS: &str = "\nIn this iteration:\n\
1. Choose one idea that is not in the history above (or one that failed for a reason you can \
now avoid).\n\
2. Make that one change. Do not change how the number is measured: the measurement command, \
its inputs and the checks stay as they are.\n\
3. Run the project's checks.\n\
4. Commit the change in one commit whose first line names the idea in a few words: the history \
will show it by that line.\n\
\n\
The loop measures your commit against the best and keeps it only if it is better beyond the \
noise; otherwise the branch returns to the best commit.\n\
\n\
End your answer with one line, the last one: `IDEA: <the idea, in a few words>`.\n";

/// The goal, the measurement, the starting point, the best and the history.
pub fn section(settings: &ExperimentConfig, experiment: &Experiment, iteration: u32) -> String {
    let metric = settings.metric_name();
    let better = match settings.goal {
        Goal::Minimize => "lower",
        Goal::Maximize => "higher",
    };
    let mut text = format!("## Experiment: iteration {iteration}\n\n");
    text.push_str(&format!(
        "Goal: make `{metric}` {better}. It is measured by `{}`, run in a clean checkout of \
         each commit; the last line it prints is the number.\n",
        settings.measure_cmd
    ));
    text.push_str(&format!(
        "A change is kept only when it makes `{metric}` {better} by more than {} at {}% \
         confidence, measured {} times against the best, alternately.\n",
        percent(settings.min_effect).trim_start_matches('+'),
        figure(settings.confidence * 100.0),
        settings.repeats
    ));
    if let Some(target) = settings.target {
        text.push_str(&format!(
            "The experiment stops when `{metric}` reaches {}.\n",
            figure(target)
        ));
    }
    if let Some(baseline) = &experiment.baseline {
        text.push_str(&format!(
            "\nStarting point: {} (commit {}).\n",
            figure(baseline.median),
            short(&baseline.commit)
        ));
    }
    if let Some(best) = &experiment.best {
        let origin = if best.iteration == 0 {
            "the starting commit".to_owned()
        } else {
            format!("kept at iteration {}", best.iteration)
        };
        text.push_str(&format!(
            "Current best: {} ± {} (commit {}, {origin}).\n",
            figure(best.metric),
            figure(best.spread),
            short(&best.commit)
        ));
    }
    if let Some(recheck) = experiment.rechecks.last()
        && let Some(drift) = &recheck.drift
        && drift.beyond_noise
    {
        text.push_str(&format!(
            "Note: the starting commit now measures {} from its first measurement {}: the \
             machine, not the code, moved.\n",
            percent(drift.effect),
            interval_text(drift.interval)
        ));
    }
    text.push_str(&history(experiment));
    text
}

fn history(experiment: &Experiment) -> String {
    if experiment.trials.is_empty() {
        return "\nNothing was tried yet.\n".to_owned();
    }
    let mut text = String::from(
        "\nWhat was tried (effect: change of the metric against the best then, with its interval):\n",
    );
    let skipped = experiment.trials.len().saturating_sub(HISTORY_ROWS);
    if skipped > 0 {
        let kept = experiment.trials[..skipped]
            .iter()
            .filter(|trial| trial.decision == Decision::Kept)
            .count();
        text.push_str(&format!(
            "- ({skipped} earlier iterations not listed, {kept} of them kept)\n"
        ));
    }
    for trial in &experiment.trials[skipped..] {
        let idea = trial
            .idea
            .as_deref()
            .map(|idea| idea.replace('\n', " "))
            .unwrap_or_else(|| "(no commit message)".to_owned());
        let effect = match (trial.effect, trial.interval) {
            (Some(effect), Some(interval)) => {
                format!("{} {}", percent(effect), interval_text(interval))
            }
            (Some(effect), None) => percent(effect),
            _ => "not measured".to_owned(),
        };
        let outcome = match trial.decision {
            Decision::Kept => "KEPT".to_owned(),
            Decision::Discarded => format!("discarded: {}", trial.reason.words()),
        };
        text.push_str(&format!(
            "- iteration {}: {idea} — {effect} — {outcome}\n",
            trial.iteration
        ));
    }
    text
}

/// A commit id as people read it.
pub fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}
