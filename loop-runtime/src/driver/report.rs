//! `report.tsv` kept current while the run goes: the whole file the first time, then the new
//! rows. A failure to write it never stops a run; the file is rewritten from the log when the
//! run settles.

use loop_core::EventRecord;
use loop_core::projection::{Report, ReportRow};

use crate::artifacts::RunFiles;

pub(super) struct ReportFile {
    report: Report,
    /// How many of its rows are in the file; `None` until the whole file is written.
    written: Option<usize>,
}

impl ReportFile {
    pub(super) fn new(report: Report) -> ReportFile {
        ReportFile {
            report,
            written: None,
        }
    }

    pub(super) fn apply(&mut self, record: &EventRecord) {
        self.report.apply(record);
    }

    pub(super) fn write(&mut self, files: &RunFiles) {
        let written = match self.written {
            None => files.write_projection("report.tsv", &self.report.to_tsv()),
            Some(done) => {
                let rows: String = self.report.rows[done..]
                    .iter()
                    .map(ReportRow::to_line)
                    .collect();
                files.append_projection("report.tsv", &rows)
            }
        };
        self.written = written.ok().map(|()| self.report.rows.len());
    }
}
