//! `loopctl export`: a run's projection files from the log alone.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::LogArgs;
use crate::output::Output;
use crate::run_ref;
use anyhow::{Context, bail};
use loop_core::projection::Export;

pub fn run(log: &LogArgs, run: &str, dir: &Path, out: &Output) -> anyhow::Result<ExitCode> {
    let store = crate::log::open(log)?;
    let run_id = run_ref::in_log(store.as_ref(), run)?;
    let db = crate::log::shown(log);
    let records = store.read_run(run_id)?;
    if records.is_empty() {
        bail!("run {run_id} has no events in {db}");
    }
    let Some(export) = Export::of(&records) else {
        bail!("run {run_id} does not start with RUN_CREATED in {db}");
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for (name, text) in export.files() {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        out.line(&path.display().to_string());
        written.push(path.display().to_string());
    }
    out.document(&crate::documents::Exported {
        run_id: run_id.to_string(),
        events: records.len(),
        files: written,
    });
    Ok(ExitCode::SUCCESS)
}
