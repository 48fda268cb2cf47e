//! `loopctl exec`: one loop in this process with the embedded runtime, its output followed live.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use loop_core::event::Event;
use loop_core::{RunStatus, Seq};
use loop_runtime::Runtime;
use loop_store::SqliteStore;

use crate::cli::RunArgs;
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
    let store = SqliteStore::open(&db)
        .with_context(|| format!("cannot open the event log {}", db.display()))?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    tokio.block_on(async {
        let runtime = Runtime::builder()
            .store(Arc::new(store))
            .data_dir(&data_dir)
            .max_runs_per_workspace(usize::MAX)
            .build()?;
        let mut output = runtime.output();
        let run = runtime.submit(request).await?;
        out.note(&format!(
            "run {} ({}) in {}",
            run.id,
            run.name,
            db.display()
        ));
        let mut events = runtime.subscribe(Some(run.id), Seq(0));
        let finished = loop {
            tokio::select! {
                chunk = output.recv() => {
                    if let Ok(chunk) = chunk
                        && chunk.run_id == run.id
                    {
                        out.raw(&chunk.content);
                    }
                }
                record = events.next() => {
                    let Some(record) = record else { break None };
                    let record = record?;
                    if let Some(line) = timeline(&record.event) {
                        out.note(&line);
                    }
                    if record.event.is_terminal() {
                        break Some(runtime.wait(run.id).await?);
                    }
                }
            }
        };
        runtime.shutdown().await;
        let Some(view) = finished else {
            anyhow::bail!("the runtime stopped before the run ended");
        };
        out.document(&serde_json::to_value(&view)?);
        let verdict = match (&view.exit_reason, &view.failure_reason) {
            (_, Some(reason)) => format!("{}: {reason}", view.status),
            (Some(exit), None) => format!("{} ({})", view.status, exit.as_str()),
            _ => view.status.to_string(),
        };
        out.note(&format!(
            "{verdict}; {} of {} tasks, {} iterations, ${:.2}",
            view.tasks_done, view.tasks_total, view.iteration, view.cost_usd
        ));
        Ok(if view.status == RunStatus::Completed {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

/// A status line for the events a person follows.
fn timeline(event: &Event) -> Option<String> {
    Some(match event {
        Event::StepStarted(step) => format!(
            "── iteration {} {} (attempt {})",
            step.iteration,
            step.phase.as_str(),
            step.attempt
        ),
        Event::StepFinished(step) => format!(
            "── {} {} in {:.1} s{}",
            step.phase.as_str(),
            step.status.as_str(),
            step.duration_ms as f64 / 1000.0,
            step.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
        Event::CompletionRejected(e) => format!("── completion rejected: {}", e.reason),
        Event::WatchdogRewrite(e) => format!("── watchdog rewrote the prompt ({})", e.signal),
        Event::AgentRetry(e) => format!("── retry in {} ms: {}", e.delay_ms, e.reason),
        Event::AgentWaiting(e) => format!("── waiting on a usage limit: {}", e.reason),
        _ => return None,
    })
}
