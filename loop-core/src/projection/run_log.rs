//! `run.log`: the run's timeline for people, one line per event.

use crate::event::{Event, EventRecord, Samples};
use crate::experiment::prompt::short;
use crate::experiment::{figure, interval_text, percent};
use crate::time::rfc3339_ms;

/// The fold behind `run.log`. Each line depends only on its own event, so the log can be
/// appended to as events arrive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunLog {
    pub text: String,
}

impl RunLog {
    pub fn fold<'a>(records: impl IntoIterator<Item = &'a EventRecord>) -> RunLog {
        let mut log = RunLog::default();
        for record in records {
            log.apply(record);
        }
        log
    }

    pub fn apply(&mut self, record: &EventRecord) {
        self.text.push_str(&run_log_line(record));
    }
}

/// One line of `run.log` (with its newline): time, type, and what happened in words.
pub fn run_log_line(record: &EventRecord) -> String {
    let detail = describe(&record.event).replace(['\n', '\r'], " ");
    let kind = record.event.event_type().as_str();
    if detail.is_empty() {
        format!("{} {kind}\n", rfc3339_ms(record.ts_ms))
    } else {
        format!("{} {kind:<26} {detail}\n", rfc3339_ms(record.ts_ms))
    }
}

fn describe(event: &Event) -> String {
    match event {
        Event::RunCreated(e) => format!(
            "{} in {} (spec {}, plan {})",
            e.name, e.workspace_root, e.spec_path, e.plan_path
        ),
        Event::RunNamed(e) => format!("{} ({})", e.name, e.name_source.as_str()),
        Event::RunClaimed(e) => match &e.took_over_from {
            Some(from) => format!("node {} (took over from {from})", e.node_id),
            None => format!("node {}", e.node_id),
        },
        Event::RunStarted(_) | Event::RunResumed(_) | Event::RunRetried(_) => String::new(),
        Event::RunPauseRequested(_) => "after the current step".to_owned(),
        Event::RunPaused(e) => e.reason.clone().unwrap_or_default(),
        Event::RunCanceled(e) => e.reason.clone().unwrap_or_default(),
        Event::RunCompleted(e) => format!(
            "{} at iteration {}",
            e.exit_reason.as_str(),
            e.completed_iteration
        ),
        Event::RunFailed(e) => format!("{}: {}", e.exit_reason.as_str(), e.reason),
        Event::WorktreeProviderSelected(e) => e.provider.to_string(),
        Event::WorktreeCreated(e) => format!(
            "{} on {} from {} ({}{})",
            e.path,
            e.run_branch,
            e.base_branch,
            e.provider,
            if e.reused { ", reused" } else { "" }
        ),
        Event::WorktreeRemoved(e) => e.path.clone(),
        Event::StepStarted(e) => format!(
            "{} iteration {} attempt {}",
            e.phase.as_str(),
            e.iteration,
            e.attempt
        ),
        Event::StepFinished(e) => {
            let mut text = format!(
                "{} {} in {} ms",
                e.phase.as_str(),
                e.status.as_str(),
                e.duration_ms
            );
            if let Some(code) = e.exit_code {
                text.push_str(&format!(", exit {code}"));
            }
            if let Some(cost) = e.cost_usd {
                text.push_str(&format!(", ${cost:.4}"));
            }
            if let Some(message) = &e.message {
                text.push_str(&format!(": {message}"));
            }
            text
        }
        Event::AgentRetry(e) => format!(
            "attempt {} after {} ms: {}",
            e.attempt, e.delay_ms, e.reason
        ),
        Event::AgentWaiting(e) => format!("until {}: {}", rfc3339_ms(e.until_ms), e.reason),
        Event::VerificationCommand(e) => format!(
            "`{}` exit {} in {} ms",
            e.command,
            e.exit_code
                .map_or_else(|| "none".to_owned(), |c| c.to_string()),
            e.duration_ms
        ),
        Event::CompletionDetected(e) => match &e.commit {
            Some(commit) => format!("iteration {} at {commit}", e.iteration),
            None => format!("iteration {}", e.iteration),
        },
        Event::CompletionRejected(e) => format!("iteration {}: {}", e.iteration, e.reason),
        Event::WatchdogSignal(e) => format!("iteration {}: {} {}", e.iteration, e.signal, e.detail)
            .trim_end()
            .to_owned(),
        Event::WatchdogRewrite(e) => {
            format!("{}: {} -> {}", e.signal, e.prompt_before, e.prompt_after)
        }
        Event::MergeStarted(e) => match &e.onto {
            Some(onto) => format!("{} {} onto {} {onto}", e.strategy, e.commit, e.target),
            None => format!("{} {} as new {}", e.strategy, e.commit, e.target),
        },
        Event::MergeFinished(e) => match (&e.commit, &e.conflict) {
            (_, Some(conflict)) => format!("{} conflict: {conflict}", e.strategy),
            (Some(commit), None) => format!("{} {commit}", e.strategy),
            (None, None) => e.strategy.clone(),
        },
        Event::ArtifactWritten(e) => format!("{} {} ({} bytes)", e.kind, e.path, e.bytes),
        Event::PostmortemStart(e) => e.reason.clone(),
        Event::PostmortemEnd(e) => match &e.reason {
            Some(reason) => format!("{}: {reason}", e.status.as_str()),
            None => e.status.as_str().to_owned(),
        },
        Event::ReviewAction(e) => {
            let mut text = e.action.to_string();
            for (key, value) in &e.detail {
                text.push_str(&format!(" {key}={value}"));
            }
            text
        }
        Event::ExperimentBaseline(e) => {
            let mut text = format!(
                "iteration {}: {} {}",
                e.iteration,
                e.metric,
                side(&e.baseline)
            );
            if let Some(drift) = &e.drift {
                text.push_str(&format!(
                    ", drift {} {}{}",
                    percent(drift.effect),
                    interval_text(drift.interval),
                    if drift.beyond_noise {
                        " beyond the noise"
                    } else {
                        ""
                    }
                ));
            }
            text
        }
        Event::ExperimentMeasured(e) => format!(
            "iteration {}: {} candidate {}, best {}",
            e.iteration,
            e.metric,
            side(&e.candidate),
            side(&e.best)
        ),
        Event::ExperimentDecided(e) => {
            let mut text = format!("iteration {}: {}", e.iteration, e.decision.as_str());
            if let Some(commit) = &e.commit {
                text.push_str(&format!(" {}", short(commit)));
            }
            text.push_str(&format!(" ({})", e.reason.as_str()));
            if let Some(effect) = e.effect {
                text.push_str(&format!(" {}", percent(effect)));
            }
            if let Some(interval) = e.interval {
                text.push_str(&format!(" {}", interval_text(interval)));
            }
            if let Some(kept_ref) = &e.kept_ref {
                text.push_str(&format!(", kept as {kept_ref}"));
            }
            text
        }
        Event::ReviewComment(e) => format!("{}:{} {}", e.path, e.line, e.body.trim()),
        Event::ChangesRequested(e) => super::report::requested_summary(e),
    }
}

/// Samples as a line shows them: `1.234 ± 0.01 at <commit> (5 samples)`.
fn side(samples: &Samples) -> String {
    format!(
        "{} ± {} at {} ({} samples)",
        figure(samples.median),
        figure(samples.spread),
        short(&samples.commit),
        samples.values.len()
    )
}
