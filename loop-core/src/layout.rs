//! Where a run's files live, computed from its frozen configuration.

use std::path::{Path, PathBuf};

use crate::config::RunConfig;
use crate::event::{Phase, RunCreated};
use crate::ids::RunId;

/// The directory name of a run: `run-<id>`.
pub fn run_dir_name(run_id: RunId) -> String {
    format!("run-{run_id}")
}

/// `<workspace_root>/<log_dir>/run-<id>/` (an absolute `log_dir` stands on its own).
pub fn workspace_run_dir(created: &RunCreated, run_id: RunId) -> PathBuf {
    let log_dir = RunConfig::from_frozen(&created.config).log_dir;
    Path::new(&created.workspace_root)
        .join(log_dir)
        .join(run_dir_name(run_id))
}

/// The file name of a step's text log: `iter-07-impl.log`, `iter-07-review.log`, …; a step run
/// again (after a pause or a crash) gets its own file, `iter-07-impl.attempt-2.log`, so the
/// output of the attempt before it is kept as it was.
pub fn step_log_name(iteration: u32, phase: Phase, attempt: u32) -> String {
    let suffix = match phase {
        Phase::Implementation => "impl",
        Phase::Review => "review",
        Phase::Verification => "verify",
        Phase::Watchdog => "watchdog",
        Phase::Merge => "merge",
        Phase::Measurement => "measure",
        Phase::Baseline => "baseline",
    };
    if attempt > 1 {
        format!("iter-{iteration:02}-{suffix}.attempt-{attempt}.log")
    } else {
        format!("iter-{iteration:02}-{suffix}.log")
    }
}

/// The tail file beside a step log: `iter-07-impl.log` → `iter-07-impl.tail.txt`.
pub fn tail_path_of(log_path: &str) -> String {
    match log_path.strip_suffix(".log") {
        Some(stem) => format!("{stem}.tail.txt"),
        None => format!("{log_path}.tail.txt"),
    }
}
