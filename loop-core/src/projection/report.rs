//! `report.tsv`: one tab-separated row per notable event, for spreadsheets and `awk`.

use std::fmt::Write as _;

use crate::event::{ChangesRequested, Event, EventRecord, Phase, StepStatus};

/// The header line of `report.tsv` (`contract.md` §5).
pub const REPORT_HEADER: &str = "timestamp_ms\tkind\titeration\tduration_ms\texit_code\toutput_bytes\toutput_lines\toutput_path\tmessage\ttasks_done\ttasks_total";

/// One row of `report.tsv`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportRow {
    pub timestamp_ms: i64,
    pub kind: &'static str,
    pub iteration: u32,
    pub duration_ms: Option<u64>,
    pub exit_code: Option<i32>,
    pub output_bytes: Option<u64>,
    pub output_lines: Option<u64>,
    pub output_path: String,
    pub message: String,
    pub tasks_done: u32,
    pub tasks_total: u32,
}

impl ReportRow {
    /// The row as one line (with its newline). Tabs and line breaks inside a field become
    /// spaces, so a row is always one line of eleven fields.
    pub fn to_line(&self) -> String {
        fn opt<T: ToString>(value: Option<T>) -> String {
            value.map(|v| v.to_string()).unwrap_or_default()
        }
        let mut line = String::new();
        let _ = writeln!(
            line,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            self.timestamp_ms,
            self.kind,
            self.iteration,
            opt(self.duration_ms),
            opt(self.exit_code),
            opt(self.output_bytes),
            opt(self.output_lines),
            one_line(&self.output_path),
            one_line(&self.message),
            self.tasks_done,
            self.tasks_total
        );
        line
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\t', '\n', '\r'], " ")
}

/// A request for changes in a few words: how many comments, on which lines, and whether the
/// person also wrote about the whole change.
pub(crate) fn requested_summary(requested: &ChangesRequested) -> String {
    let n = requested.comments.len();
    let mut text = format!("{n} comment{}", if n == 1 { "" } else { "s" });
    let places: Vec<String> = requested
        .comments
        .iter()
        .map(|comment| format!("{}:{}", comment.path, comment.line))
        .collect();
    if !places.is_empty() {
        text.push_str(&format!(" ({})", places.join(", ")));
    }
    if requested.body.is_some() {
        text.push_str(" and a note on the whole change");
    }
    text
}

/// The fold behind `report.tsv`: the rows so far and the context later rows need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub rows: Vec<ReportRow>,
    iteration: u32,
    tasks_done: u32,
    tasks_total: u32,
}

impl Report {
    pub fn fold<'a>(records: impl IntoIterator<Item = &'a EventRecord>) -> Report {
        let mut report = Report::default();
        for record in records {
            report.apply(record);
        }
        report
    }

    /// Applies the next event and returns how many rows it added (they are the last ones).
    pub fn apply(&mut self, record: &EventRecord) -> usize {
        let before = self.rows.len();
        if let Event::StepStarted(step) = &record.event
            && step.phase == Phase::Implementation
        {
            self.iteration = step.iteration;
        }
        if let Event::StepFinished(step) = &record.event {
            self.tasks_done = step.tasks_done.unwrap_or(self.tasks_done);
            self.tasks_total = step.tasks_total.unwrap_or(self.tasks_total);
        }
        if let Some(row) = self.row_for(record) {
            self.rows.push(row);
        }
        self.rows.len() - before
    }

    /// The whole file: header and rows.
    pub fn to_tsv(&self) -> String {
        let mut text = String::with_capacity(64 * (self.rows.len() + 1));
        text.push_str(REPORT_HEADER);
        text.push('\n');
        for row in &self.rows {
            text.push_str(&row.to_line());
        }
        text
    }

    fn row_for(&self, record: &EventRecord) -> Option<ReportRow> {
        let row = |kind: &'static str, message: String| ReportRow {
            timestamp_ms: record.ts_ms,
            kind,
            iteration: self.iteration,
            message,
            tasks_done: self.tasks_done,
            tasks_total: self.tasks_total,
            ..ReportRow::default()
        };
        Some(match &record.event {
            Event::RunStarted(_) => row("RUN_START", String::new()),
            Event::RunPaused(e) => row("RUN_PAUSED", e.reason.clone().unwrap_or_default()),
            Event::RunResumed(_) => row("RUN_RESUMED", String::new()),
            Event::RunRetried(_) => row("RUN_RETRIED", String::new()),
            Event::ChangesRequested(e) => row("CHANGES_REQUESTED", requested_summary(e)),
            Event::StepStarted(step) => {
                let kind = match step.phase {
                    Phase::Implementation => "ITERATION_START",
                    Phase::Review => "REVIEW_START",
                    Phase::Verification => "VERIFY_START",
                    Phase::Watchdog => "WATCHDOG_START",
                    Phase::Merge => "MERGE_START",
                    Phase::Measurement => "MEASURE_START",
                    Phase::Baseline => "BASELINE_START",
                };
                row(kind, format!("attempt {}", step.attempt))
            }
            Event::StepFinished(step) => {
                let kind = match step.phase {
                    Phase::Implementation => "ITERATION_END",
                    Phase::Review => "REVIEW_END",
                    Phase::Verification => "VERIFY_END",
                    Phase::Watchdog => "WATCHDOG_END",
                    Phase::Merge => "MERGE_END",
                    Phase::Measurement => "MEASURE_END",
                    Phase::Baseline => "BASELINE_END",
                };
                let mut message = step.status.as_str().to_owned();
                if let Some(note) = &step.message
                    && step.status != StepStatus::Succeeded
                {
                    message = format!("{message}: {note}");
                }
                ReportRow {
                    duration_ms: Some(step.duration_ms),
                    exit_code: step.exit_code,
                    output_bytes: Some(step.output_bytes),
                    output_lines: Some(step.output_lines),
                    output_path: step.output_path.clone().unwrap_or_default(),
                    ..row(kind, message)
                }
            }
            Event::AgentRetry(retry) => row(
                "AGENT_RETRY",
                format!(
                    "attempt {} in {} ms: {}",
                    retry.attempt, retry.delay_ms, retry.reason
                ),
            ),
            Event::AgentWaiting(wait) => row(
                "AGENT_WAITING",
                format!("until {}: {}", wait.until_ms, wait.reason),
            ),
            Event::WatchdogSignal(signal) => row("WATCHDOG_SIGNAL", signal.signal.to_string()),
            Event::WatchdogRewrite(rewrite) => row("WATCHDOG_REWRITE", rewrite.signal.to_string()),
            Event::CompletionDetected(detected) => row(
                "COMPLETE_DETECTED",
                detected.commit.clone().unwrap_or_default(),
            ),
            Event::CompletionRejected(rejected) => {
                row("COMPLETE_REJECTED", rejected.reason.clone())
            }
            Event::MergeFinished(merge) => row(
                "MERGE_FINISHED",
                match (&merge.commit, &merge.conflict) {
                    (_, Some(conflict)) => format!("{} conflict: {conflict}", merge.strategy),
                    (Some(commit), None) => format!("{} {commit}", merge.strategy),
                    (None, None) => merge.strategy.clone(),
                },
            ),
            Event::PostmortemStart(start) => row("POSTMORTEM_START", start.reason.clone()),
            Event::PostmortemEnd(end) => row(
                "POSTMORTEM_END",
                match &end.reason {
                    Some(reason) => format!("{}: {reason}", end.status.as_str()),
                    None => end.status.as_str().to_owned(),
                },
            ),
            Event::ExperimentBaseline(measured) => row(
                "BASELINE",
                format!(
                    "{} {}",
                    measured.metric,
                    crate::experiment::figure(measured.baseline.median)
                ),
            ),
            Event::ExperimentMeasured(measured) => row(
                "MEASURED",
                format!(
                    "{} candidate {} best {}",
                    measured.metric,
                    crate::experiment::figure(measured.candidate.median),
                    crate::experiment::figure(measured.best.median)
                ),
            ),
            Event::ExperimentDecided(decided) => row(
                match decided.decision {
                    crate::event::Decision::Kept => "EXPERIMENT_KEPT",
                    crate::event::Decision::Discarded => "EXPERIMENT_DISCARDED",
                },
                match decided.effect {
                    Some(effect) => format!(
                        "{} {}",
                        decided.reason.as_str(),
                        crate::experiment::percent(effect)
                    ),
                    None => decided.reason.as_str().to_owned(),
                },
            ),
            Event::RunCompleted(done) => row("RUN_END", done.exit_reason.as_str().to_owned()),
            Event::RunFailed(failed) => row(
                "RUN_END",
                format!("{}: {}", failed.exit_reason.as_str(), failed.reason),
            ),
            Event::RunCanceled(canceled) => row(
                "RUN_END",
                match &canceled.reason {
                    Some(reason) => format!("canceled: {reason}"),
                    None => "canceled".to_owned(),
                },
            ),
            Event::RunCreated(_)
            | Event::RunPauseRequested(_)
            | Event::RunNamed(_)
            | Event::RunClaimed(_)
            | Event::WorktreeProviderSelected(_)
            | Event::WorktreeCreated(_)
            | Event::WorktreeRemoved(_)
            | Event::VerificationCommand(_)
            | Event::MergeStarted(_)
            | Event::ArtifactWritten(_)
            | Event::ReviewAction(_)
            | Event::ReviewComment(_) => return None,
        })
    }
}
