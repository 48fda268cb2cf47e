//! `summary.json`: the figures of a run on one page.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::event::{Event, EventRecord, ExitReason, Phase, StepStatus};
use crate::ids::RunId;
use crate::layout::{tail_path_of, workspace_run_dir};
use crate::projection::ExperimentTable;
use crate::projection::experiments::ExperimentBrief;
use crate::projection::run_view::add_cost;

/// The contents of `summary.json` (`contract.md` §5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub run_id: RunId,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub total_duration_ms: Option<u64>,
    pub iterations_run: u32,
    pub completed_iteration: Option<u32>,
    pub avg_duration_ms: Option<u64>,
    pub last_exit_code: Option<i32>,
    pub completion_mode: String,
    pub model: String,
    pub exit_reason: Option<ExitReason>,
    pub run_log: String,
    pub run_report: String,
    pub prompt_snapshot: String,
    pub last_iteration_tail: Option<String>,
    pub last_iteration_log: Option<String>,
    pub cost_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub review_iterations: u32,
    pub verification_passes: u32,
    pub verification_failures: u32,
    /// An experiment's figures (`mode=experiment` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentBrief>,
    #[serde(skip)]
    implementation_ms: u64,
    #[serde(skip)]
    experiment_table: Option<Box<ExperimentTable>>,
}

impl Summary {
    /// The summary of a run's events; `None` when the first is not `RUN_CREATED`.
    pub fn fold<'a>(records: impl IntoIterator<Item = &'a EventRecord>) -> Option<Summary> {
        let mut records = records.into_iter();
        let first = records.next()?;
        let Event::RunCreated(created) = &first.event else {
            return None;
        };
        let dir = workspace_run_dir(created, first.run_id);
        let in_dir = |name: &str| path_text(&dir.join(name));
        let config = RunConfig::from_frozen(&created.config);
        // An empty `model` leaves the choice to the agent's CLI; the summary names the default.
        let model = Some(config.model.clone())
            .filter(|model| !model.is_empty())
            .unwrap_or_else(|| RunConfig::default().model);
        let mut summary = Summary {
            run_id: first.run_id,
            start_ms: None,
            end_ms: None,
            total_duration_ms: None,
            iterations_run: 0,
            completed_iteration: None,
            avg_duration_ms: None,
            last_exit_code: None,
            completion_mode: config.completion_mode.as_str().to_owned(),
            model,
            exit_reason: None,
            run_log: in_dir("run.log"),
            run_report: in_dir("report.tsv"),
            prompt_snapshot: in_dir("prompt.txt"),
            last_iteration_tail: None,
            last_iteration_log: None,
            cost_usd: 0.0,
            input_tokens: 0,
            output_tokens: 0,
            review_iterations: 0,
            verification_passes: 0,
            verification_failures: 0,
            experiment: None,
            implementation_ms: 0,
            experiment_table: ExperimentTable::of(&config).map(Box::new),
        };
        summary.experiment = summary.experiment_table.as_ref().map(|t| t.brief());
        for record in records {
            summary.apply(record);
        }
        Some(summary)
    }

    fn apply(&mut self, record: &EventRecord) {
        if let Some(paid) = record.event.paid() {
            self.cost_usd = add_cost(self.cost_usd, paid.cost_usd.unwrap_or(0.0));
            if let Some(tokens) = paid.tokens {
                self.input_tokens += tokens.input;
                self.output_tokens += tokens.output;
            }
        }
        if let Some(table) = self.experiment_table.as_mut()
            && matches!(
                record.event,
                Event::ExperimentBaseline(_)
                    | Event::ExperimentMeasured(_)
                    | Event::ExperimentDecided(_)
                    | Event::StepStarted(_)
                    | Event::StepFinished(_)
                    | Event::RunRetried(_)
            )
        {
            table.apply(record);
            self.experiment = Some(table.brief());
        }
        match &record.event {
            Event::RunStarted(_) => {
                self.start_ms.get_or_insert(record.ts_ms);
            }
            Event::RunRetried(_) | Event::ChangesRequested(_) => {
                self.end_ms = None;
                self.total_duration_ms = None;
                self.exit_reason = None;
            }
            Event::RunCompleted(done) => {
                self.completed_iteration = Some(done.completed_iteration);
                self.end(record, done.exit_reason);
            }
            Event::RunFailed(failed) => self.end(record, failed.exit_reason),
            Event::RunCanceled(_) => self.end(record, ExitReason::Canceled),
            Event::StepFinished(step) => match step.phase {
                Phase::Implementation => {
                    self.iterations_run += 1;
                    self.implementation_ms += step.duration_ms;
                    self.avg_duration_ms =
                        Some(self.implementation_ms / u64::from(self.iterations_run));
                    self.last_exit_code = step.exit_code;
                    if let Some(log) = &step.output_path {
                        self.last_iteration_tail = Some(tail_path_of(log));
                        self.last_iteration_log = Some(log.clone());
                    }
                }
                Phase::Review => self.review_iterations += 1,
                Phase::Verification => match step.status {
                    StepStatus::Succeeded => self.verification_passes += 1,
                    StepStatus::Failed => self.verification_failures += 1,
                    _ => {}
                },
                Phase::Watchdog | Phase::Merge | Phase::Measurement | Phase::Baseline => {}
            },
            _ => {}
        }
    }

    fn end(&mut self, record: &EventRecord, exit_reason: ExitReason) {
        self.exit_reason = Some(exit_reason);
        self.end_ms = Some(record.ts_ms);
        self.total_duration_ms = self
            .start_ms
            .map(|start| u64::try_from(record.ts_ms - start).unwrap_or(0));
    }

    /// The file's text: pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a summary always serializes");
        text.push('\n');
        text
    }
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
