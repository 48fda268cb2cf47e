//! `loopctl exec`: one loop in this process with the embedded runtime, its output followed live.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use loop_core::RunStatus;

use crate::cli::RunArgs;
use crate::cmd::follow;
use crate::output::Output;
use crate::workspace;

pub fn run(args: &RunArgs, db: Option<PathBuf>, out: &Output) -> anyhow::Result<ExitCode> {
    let request = workspace::request(args)?;
    let data_dir = loop_runtime::default_data_dir();
    let db = match db {
        Some(db) => db,
        None => {
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
            data_dir.join("loopd.db")
        }
    };
    let view = follow::run_in_process(request, &db, &data_dir, out)?;
    Ok(if view.status == RunStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
