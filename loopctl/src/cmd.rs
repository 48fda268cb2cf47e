//! One module per group of commands.

mod demo;
mod exec;
mod export;
mod follow;
mod init;
mod prompt;
mod replay;
mod worktrees;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use loop_store::SqliteStore;

use crate::cli::Command;
use crate::output::Output;

pub fn run(command: Command, out: &Output) -> anyhow::Result<ExitCode> {
    match command {
        Command::Replay { db, run } => replay::run(&db, run.as_deref(), out),
        Command::Export { run, db, out: dir } => export::run(&db, &run, &dir, out),
        Command::Exec { run, db } => exec::run(&run, db, out),
        Command::Prompt { run } => prompt::run(&run, out),
        Command::Demo { dir } => demo::run(dir, out),
        Command::Init => init::run(out),
        Command::Worktrees { all, db } => worktrees::list(db, all, out),
        Command::WorktreeRm { path, force, db } => worktrees::remove(&path, force, db, out),
        Command::Gc {
            dry_run,
            older_than,
            all,
            db,
        } => worktrees::gc(dry_run, older_than, all, db, out),
    }
}

/// Opens an existing event log; never creates one (a typo in `--db` must not look like an
/// empty log).
fn open_existing(db: &Path) -> anyhow::Result<SqliteStore> {
    if !db.is_file() {
        bail!(
            "no event log at {}: pass the loopd.db file with --db",
            db.display()
        );
    }
    SqliteStore::open(db).with_context(|| format!("cannot open the event log {}", db.display()))
}
