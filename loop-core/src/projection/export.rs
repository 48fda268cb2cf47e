//! The files `loopctl export` writes, computed from a run's events alone.

use crate::event::EventRecord;
use crate::projection::{ExperimentTable, Report, RunLog, Summary};

/// `events.jsonl`: each event's JSON envelope on its own line.
pub fn events_jsonl<'a>(records: impl IntoIterator<Item = &'a EventRecord>) -> String {
    let mut text = String::new();
    for record in records {
        text.push_str(&record.to_json());
        text.push('\n');
    }
    text
}

/// The projection files of one run, as text.
#[derive(Clone, Debug, PartialEq)]
pub struct Export {
    pub report_tsv: String,
    pub summary_json: String,
    pub run_log: String,
    pub events_jsonl: String,
    /// `experiments.tsv`, for an experiment.
    pub experiments_tsv: Option<String>,
}

impl Export {
    /// The files of a run; `None` when the first event is not `RUN_CREATED`.
    pub fn of(records: &[EventRecord]) -> Option<Export> {
        Some(Export {
            summary_json: Summary::fold(records)?.to_json(),
            report_tsv: Report::fold(records).to_tsv(),
            run_log: RunLog::fold(records).text,
            events_jsonl: events_jsonl(records),
            experiments_tsv: ExperimentTable::fold(records).map(|table| table.to_tsv()),
        })
    }

    /// File names and contents, in the order they are written.
    pub fn files(&self) -> Vec<(&'static str, &str)> {
        let mut files = vec![
            ("report.tsv", self.report_tsv.as_str()),
            ("summary.json", &self.summary_json),
            ("run.log", &self.run_log),
            ("events.jsonl", &self.events_jsonl),
        ];
        if let Some(experiments) = &self.experiments_tsv {
            files.push(("experiments.tsv", experiments));
        }
        files
    }
}
