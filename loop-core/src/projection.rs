//! Projections: everything a person or a program reads about a run, as pure functions of its
//! events.
//!
//! Each projection is a fold with an `apply(&EventRecord)` step, so it can be kept current one
//! event at a time (the store's tables, `report.tsv` during a run) or computed in one pass
//! (`loopctl export`, `loopctl replay`); both give the same answer, which the property tests
//! check.

mod comments;
mod experiments;
mod export;
mod report;
mod run_log;
mod run_view;
mod step_view;
mod summary;

pub use comments::{CommentView, Comments};
pub use experiments::{
    EXPERIMENTS_HEADER, ExperimentBrief, ExperimentRow, ExperimentTable, Recheck,
};
pub use export::{Export, events_jsonl};
pub use report::{REPORT_HEADER, Report, ReportRow};
pub use run_log::{RunLog, run_log_line};
pub use run_view::{
    CurrentStep, MergeView, RunView, WaitCode, Waiting, WorktreeView, add_cost, wait_code,
};
pub use step_view::{CommandOutcome, StepView, step_of};
pub use summary::Summary;
