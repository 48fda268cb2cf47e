//! `loopctl exec`: one loop in this process with the embedded runtime, its output followed live.
//!
//! Exec and a daemon never drive the same log: exec takes the data dir's lock, as `loopd` does.
//! When a daemon already holds it, exec hands the run to that daemon and follows it there (as
//! `loopctl run --follow` would); when another exec holds it, exec says so and stops.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use loop_runtime::lock::{DataDirLock, LockError};

use crate::cli::RunArgs;
use crate::cmd::follow;
use crate::cmd::run as daemon_run;
use crate::connect::Daemon;
use crate::output::Output;
use crate::workspace;

pub fn run(
    args: &RunArgs,
    db: Option<PathBuf>,
    token: Option<String>,
    out: &Output,
) -> anyhow::Result<ExitCode> {
    let request = workspace::request(args)?;
    // The data dir is the one that holds the log: its lock, its process ledger, its mirror.
    let (db, data_dir) = match db {
        Some(db) => {
            let dir = db
                .parent()
                .filter(|dir| !dir.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), PathBuf::from);
            (db, dir)
        }
        None => {
            let dir = loop_runtime::default_data_dir();
            (dir.join("loopd.db"), dir)
        }
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    let _lock = match DataDirLock::take(&data_dir, "(loopctl exec)") {
        Ok(lock) => lock,
        Err(LockError::Held {
            dir,
            holder:
                loop_runtime::lock::Holder {
                    address: Some(address),
                    text,
                    ..
                },
        }) => {
            out.note(&format!(
                "a loopd ({text}) holds {}: handing the run to it; Ctrl-C stops following, \
                 not the run",
                dir.display()
            ));
            let client = Daemon::new(&address, token, true).connect()?;
            return daemon_run::run(&client, args, true, false, out);
        }
        Err(LockError::Held { dir, holder }) => anyhow::bail!(
            "{} is in use by another loopctl exec ({}); wait for it to finish, or pass another --db",
            dir.display(),
            holder.text
        ),
        Err(error) => return Err(error.into()),
    };
    let swept = loop_runtime::process::sweep(&data_dir);
    if swept > 0 {
        out.note(&format!(
            "stopped {swept} process group(s) an earlier run in {} left running",
            data_dir.display()
        ));
    }
    let follow::Followed::Ended(view) = follow::run_in_process(request, &db, &data_dir, out)?
    else {
        return Ok(ExitCode::from(130));
    };
    // The document of `loopctl run --wait`, so a script reads a run the same way from both.
    let envelope = loop_api::runs::RunEnvelope { run: *view };
    out.document(&envelope);
    Ok(crate::render::exit_status(&envelope.run))
}
