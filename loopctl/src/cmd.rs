//! One module per group of commands.

mod accounts;
mod analyze;
mod completions;
mod control;
mod demo;
mod events;
mod exec;
mod experiment;
mod export;
mod follow;
mod init;
mod inspect;
mod list;
mod migrate;
mod nodes;
mod prompt;
mod replay;
mod review;
mod run;
mod stats;
mod tail;
mod worktrees;

use std::process::ExitCode;

use loop_client::Control;

use crate::cli::Command;
use crate::connect::Daemon;
use crate::output::Output;
use crate::{picker, source};

pub fn run(command: Command, daemon: &Daemon, out: &Output) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run {
            mut run,
            follow,
            wait,
        } => {
            let client = daemon.connect()?;
            picker::fill(&mut run, "run")?;
            run::run(&client, &run, follow, wait, out)
        }
        Command::List {
            status,
            workspace,
            limit,
        } => list::list(&daemon.connect()?, status.as_deref(), workspace, limit, out),
        Command::Inspect { run } => inspect::inspect(&daemon.connect()?, &run, out),
        Command::Pause { run, now } => {
            let action = if now {
                Control::PauseNow
            } else {
                Control::Pause
            };
            control::control(&daemon.connect()?, &run, action, out)
        }
        Command::Resume { run } => control::control(&daemon.connect()?, &run, Control::Resume, out),
        Command::Cancel { run } => control::control(&daemon.connect()?, &run, Control::Cancel, out),
        Command::Retry { run } => control::control(&daemon.connect()?, &run, Control::Retry, out),
        Command::Wait { run } => control::wait(&daemon.connect()?, &run, out),
        Command::Tail { run, follow } => tail::tail(&daemon.connect()?, &run, follow, out),
        Command::Events { run, follow, after } => {
            events::events(&daemon.connect()?, &run, follow, after, out)
        }
        Command::Diff { run } => review::diff(&daemon.connect()?, &run, out),
        Command::Merge {
            run,
            strategy,
            target,
        } => review::merge(
            &daemon.connect()?,
            &run,
            strategy.as_deref(),
            target.as_deref(),
            out,
        ),
        Command::Scrap { run } => review::scrap(&daemon.connect()?, &run, out),
        Command::Pr { run, title, body } => review::pr(
            &daemon.connect()?,
            &run,
            title.as_deref(),
            body.as_deref(),
            out,
        ),
        Command::Analyze {
            run,
            latest: _,
            model,
            prompt_only,
            again,
            db,
        } => analyze::run(
            source::resolve(daemon, db, out)?,
            run.as_deref(),
            &analyze::Ask {
                model,
                prompt_only,
                again,
            },
            out,
        ),
        Command::Stats {
            since,
            workspace,
            db,
        } => stats::run(
            source::resolve(daemon, db, out)?,
            since.as_deref(),
            workspace,
            out,
        ),
        Command::Experiment { run, db } => {
            experiment::run(source::resolve(daemon, db, out)?, &run, out)
        }
        Command::Completions { shell } => completions::run(shell),
        Command::Replay { log, run } => replay::run(&log, run.as_deref(), out),
        Command::Export { run, log, out: dir } => export::run(&log, &run, &dir, out),
        Command::Migrate { from, to } => migrate::run(&from, &to, out),
        Command::Exec { run, db } => exec::run(&run, db, daemon.token(), out),
        Command::Prompt { mut run } => {
            picker::fill(&mut run, "prompt")?;
            prompt::run(&run, out)
        }
        Command::Demo { dir } => demo::run(dir, out),
        Command::Nodes => nodes::run(&daemon.connect()?, out),
        Command::Accounts => accounts::run(&daemon.connect()?, out),
        Command::Init { spec } => init::run(spec.as_deref(), out),
        Command::Worktrees { all, db } => {
            worktrees::list(source::resolve(daemon, db, out)?, all, out)
        }
        Command::WorktreeRm { path, force, db } => {
            worktrees::remove(source::resolve(daemon, db, out)?, &path, force, out)
        }
        Command::Gc {
            dry_run,
            older_than,
            all,
            db,
        } => worktrees::gc(
            source::resolve(daemon, db, out)?,
            dry_run,
            older_than,
            all,
            out,
        ),
    }
}
