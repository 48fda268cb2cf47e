//! `loopctl export`: a run's projection files from the log alone.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use loop_core::projection::Export;
use loop_store::EventStore;

use crate::log::open_existing;
use crate::output::Output;
use crate::run_ref;

pub fn run(db: &Path, run: &str, dir: &Path, out: &Output) -> anyhow::Result<ExitCode> {
    let store = open_existing(db)?;
    let run_id = run_ref::in_log(&store, run)?;
    let records = store.read_run(run_id)?;
    if records.is_empty() {
        bail!("run {run_id} has no events in {}", db.display());
    }
    let Some(export) = Export::of(&records) else {
        bail!(
            "run {run_id} does not start with RUN_CREATED in {}",
            db.display()
        );
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for (name, text) in export.files() {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        out.line(&path.display().to_string());
        written.push(path.display().to_string());
    }
    out.document(&serde_json::json!({
        "run_id": run_id.to_string(),
        "events": records.len(),
        "files": written,
    }));
    Ok(ExitCode::SUCCESS)
}
