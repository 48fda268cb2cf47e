//! Running one loop in this process and following it: the agent's output on stdout as it is
//! written, a timeline of steps on stderr. The caller prints the final run (under `--json`,
//! `{"run": Run, …}`, the document `loopctl run --wait` prints).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use loop_core::Seq;
use loop_core::event::Event;
use loop_core::projection::RunView;
use loop_runtime::{Claim, RunRequest, Runtime};
use loop_store::SqliteStore;

use crate::output::Output;

/// How a run followed in this process ended for this process.
pub enum Followed {
    /// The run reached a terminal state.
    Ended(Box<RunView>),
    /// Ctrl-C: the runtime stopped its agent and recorded the step as interrupted; the run is
    /// still RUNNING in the log, for a daemon on the same data dir to continue.
    Interrupted,
}

/// Submits `request` to an embedded runtime over the log at `db` and follows it to its end, or
/// until Ctrl-C.
pub fn run_in_process(
    request: RunRequest,
    db: &Path,
    data_dir: &Path,
    out: &Output,
) -> anyhow::Result<Followed> {
    let store = SqliteStore::open(db)
        .with_context(|| format!("cannot open the event log {}", db.display()))?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    tokio.block_on(async {
        let runtime = Runtime::builder()
            .store(Arc::new(store))
            .data_dir(data_dir)
            .max_runs_per_workspace(usize::MAX)
            // Only this run: a daemon's runs on the same log stay the daemon's.
            .claim(Claim::Submitted)
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
        let interrupt = tokio::signal::ctrl_c();
        tokio::pin!(interrupt);
        let finished = loop {
            tokio::select! {
                _ = &mut interrupt => {
                    // The default SIGINT would kill this process between two appends and leave
                    // the agent to the next start's sweep; stopping the runtime instead ends the
                    // step as INTERRUPTED, which is what a daemon's recovery continues from.
                    runtime.shutdown().await;
                    out.note(&format!(
                        "\nloopctl: interrupted; run {} stays RUNNING in {}. \
                         `loopd --data-dir {}` continues it (then `loopctl cancel {}` stops it).",
                        run.name,
                        db.display(),
                        data_dir.display(),
                        run.name,
                    ));
                    return Ok(Followed::Interrupted);
                }
                chunk = output.recv() => {
                    if let Ok(chunk) = chunk
                        && chunk.run_id == run.id
                    {
                        out.agent(&chunk.content);
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
        // The postmortem runs in this process too: leaving now would cut it short.
        if let Some(view) = &finished
            && view.postmortem.as_deref() == Some("running")
        {
            out.note("── postmortem: analysing the run (Ctrl-C skips it)");
            tokio::select! {
                report = runtime.wait_postmortem(view.id) => {
                    let report = report?;
                    out.note(&format!(
                        "── postmortem {} in {}{}",
                        report.status.as_deref().unwrap_or("unknown"),
                        report.dir,
                        report.reason.map(|r| format!(": {r}")).unwrap_or_default()
                    ));
                }
                _ = &mut interrupt => out.note(&format!(
                    "── postmortem skipped; `loopctl analyze {}` runs it later",
                    view.name
                )),
            }
        }
        runtime.shutdown().await;
        let Some(view) = finished else {
            anyhow::bail!("the runtime stopped before the run ended");
        };
        let verdict = match (&view.exit_reason, &view.failure_reason) {
            (_, Some(reason)) => format!("{}: {reason}", view.status),
            (Some(exit), None) => format!("{} ({})", view.status, exit.as_str()),
            _ => view.status.to_string(),
        };
        out.note(&format!(
            "{verdict}; {} of {} tasks, {}, ${:.2}",
            view.tasks_done,
            view.tasks_total,
            crate::render::iterations(view.iteration),
            view.cost_usd
        ));
        Ok(Followed::Ended(Box::new(view)))
    })
}

/// A status line for the events a person follows.
fn timeline(event: &Event) -> Option<String> {
    Some(match event {
        Event::WorktreeCreated(w) => format!("── worktree {} on {}", w.path, w.run_branch),
        Event::StepStarted(step) => format!(
            "── iteration {} {} (attempt {})",
            step.iteration,
            step.phase.as_str(),
            step.attempt
        ),
        Event::StepFinished(step) => format!(
            "── {} {} in {:.1} s{}{}",
            step.phase.as_str(),
            step.status.as_str(),
            step.duration_ms as f64 / 1000.0,
            match (step.tasks_done, step.tasks_total) {
                (Some(done), Some(total)) => format!(", {done}/{total} tasks"),
                _ => String::new(),
            },
            step.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
        Event::VerificationCommand(c) => format!(
            "   `{}` exit {}",
            c.command,
            c.exit_code
                .map_or_else(|| "none".to_owned(), |code| code.to_string())
        ),
        Event::CompletionDetected(_) => "── completion claimed".to_owned(),
        Event::CompletionRejected(e) => format!("── completion rejected: {}", e.reason),
        Event::WatchdogRewrite(e) => format!("── watchdog rewrote the prompt ({})", e.signal),
        Event::AgentRetry(e) => format!("── retry in {} ms: {}", e.delay_ms, e.reason),
        Event::AgentWaiting(e) => format!("── waiting on a usage limit: {}", e.reason),
        Event::MergeFinished(m) => match (&m.commit, &m.conflict) {
            (Some(commit), _) => format!("── merged ({}) as {commit}", m.strategy),
            (_, conflict) => format!("── merge failed: {}", conflict.as_deref().unwrap_or("")),
        },
        _ => return None,
    })
}
