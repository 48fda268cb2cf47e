//! Running one loop in this process and following it: the agent's output on stdout as it is
//! written, a timeline of steps on stderr. The caller prints the final run (under `--json`,
//! `{"run": Run, …}`, the document `loopctl run --wait` prints).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use loop_api::meta::OutputChunk;
use loop_core::projection::RunView;
use loop_runtime::{Claim, RunRequest, Runtime};
use loop_store::SqliteStore;

use crate::live::Live;
use crate::output::Output;

/// How often the status line's clock moves (the run view is read every fourth tick).
const TICK: std::time::Duration = std::time::Duration::from_millis(500);

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
        let mut live = Live::new(&run, &[], out, false);
        let mut events = runtime.subscribe(Some(run.id), run.last_seq);
        let interrupt = tokio::signal::ctrl_c();
        tokio::pin!(interrupt);
        let mut tick = tokio::time::interval(TICK);
        let mut polls = 0u32;
        let finished = loop {
            tokio::select! {
                _ = &mut interrupt => {
                    live.close();
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
                        live.output(&OutputChunk {
                            step_id: chunk.step_id,
                            offset: chunk.offset,
                            content: chunk.content,
                        });
                    }
                }
                record = events.next() => {
                    let Some(record) = record else { break None };
                    let record = record?;
                    live.event(&record);
                    if record.event.is_terminal() {
                        break Some(runtime.wait(run.id).await?);
                    }
                }
                _ = tick.tick() => {
                    polls += 1;
                    // The waits no event records (the account's) are read from the run view.
                    if polls % 4 == 0
                        && let Ok(view) = runtime.get(run.id).await
                    {
                        live.view(&view);
                    } else {
                        live.tick();
                    }
                }
            }
        };
        // The postmortem runs in this process too: leaving now would cut it short.
        if let Some(view) = &finished
            && view.postmortem.as_deref() == Some("running")
        {
            live.note("── postmortem: analysing the run (Ctrl-C skips it)");
            tokio::select! {
                report = runtime.wait_postmortem(view.id) => {
                    let report = report?;
                    live.note(&format!(
                        "── postmortem {} in {}{}",
                        report.status.map_or("unknown", |state| state.as_str()),
                        report.dir,
                        report.reason.map(|r| format!(": {r}")).unwrap_or_default()
                    ));
                }
                _ = &mut interrupt => live.note(&format!(
                    "── postmortem skipped; `loopctl analyze {}` runs it later",
                    view.name
                )),
            }
        }
        live.close();
        // The run as it stands now: its postmortem's cost included.
        let finished = match finished {
            Some(view) => Some(runtime.get(view.id).await.unwrap_or(view)),
            None => None,
        };
        runtime.shutdown().await;
        let Some(view) = finished else {
            anyhow::bail!("the runtime stopped before the run ended");
        };
        out.note(&format!(
            "{}; {} of {} tasks, {}, {}",
            crate::render::verdict(&view),
            view.tasks_done,
            view.tasks_total,
            crate::render::iterations(view.iteration),
            crate::human::money(view.cost_usd)
        ));
        for line in crate::render::closing(&view) {
            out.note(&line);
        }
        Ok(Followed::Ended(Box::new(view)))
    })
}
