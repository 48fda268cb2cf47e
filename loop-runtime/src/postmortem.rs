//! The postmortem: what happened in a run, written down when it ends.
//!
//! When a run settles (COMPLETED, FAILED or CANCELED) with `postmortem=true`, the runtime
//! records `POSTMORTEM_START` and snapshots the run's working tree with git into `analysis/`
//! — before the worktree of a failed run is cleaned up — and then, in a task of its own that
//! holds no scheduler slot, asks the run's agent for the three analyses of
//! [`loop_core::postmortem`], each prompt saved beside its answer, and records
//! `POSTMORTEM_END {ok|failed|skipped, reason}` ([`analysis`]). Every file is recorded as
//! `ARTIFACT_WRITTEN`; the projection files are rewritten at the end. Nothing here changes the
//! run's status: a missing agent, a failing analysis or a timeout goes into the end's reason
//! and the next analysis goes on.
//!
//! Which adapters analyse: `claude`, `codex`, `demo` (a short fixed answer) and any adapter an
//! embedder registers, called with `LOOP_PHASE=postmortem` and `LOOP_ANALYSIS=<name>`. Not
//! `command`: its `agent_cmd` is a script written to implement plan tasks, and handing it an
//! analysis prompt could let it edit and commit in a finished run's tree; its postmortem writes
//! the snapshots and prompts and ends `skipped`.
//!
//! On demand ([`Postmortems::on_demand`]) the same work runs with another model, or writes the
//! prompts only.

mod analysis;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use loop_core::config::PostmortemWhen;
use loop_core::event::{Event, PostmortemEnd, PostmortemStart, PostmortemStatus};
use loop_core::postmortem::ANALYSIS_DIR;
use loop_core::projection::RunView;
use loop_core::{Command, RunId, RunStatus};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::error::RuntimeError;
use crate::services::Services;

pub use loop_api::insight::{AnalysisFile, PostmortemReport, PostmortemState};

/// The postmortem tasks this runtime runs, so a retry or a shutdown can stop them.
pub(crate) struct Postmortems {
    services: Arc<Services>,
    /// Whose say an analysis's agent call waits on, as every call of the run's does.
    accounts: Arc<crate::accounts::Accounts>,
    tasks: Arc<Tasks>,
}

/// The running tasks, shared with each task so it can cross itself out.
#[derive(Debug)]
struct Tasks {
    running: Mutex<HashMap<RunId, Task>>,
    next_id: AtomicU64,
    /// Runs whose postmortem task ended, its files written (for `wait_postmortem`).
    done: broadcast::Sender<RunId>,
}

#[derive(Debug)]
struct Task {
    id: u64,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

/// A postmortem whose `POSTMORTEM_START` is recorded.
#[derive(Debug)]
pub(crate) struct Job {
    run_id: RunId,
    model: Option<String>,
    prompt_only: bool,
    /// Whether the snapshots are still to be taken (on demand; after a run's end they are
    /// taken at once, before its worktree can go).
    snapshot: bool,
    /// What went wrong before the analyses, for the end's reason.
    problems: Vec<String>,
}

impl Tasks {
    fn lock(&self) -> MutexGuard<'_, HashMap<RunId, Task>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn finished(&self, run_id: RunId, id: u64) {
        let mut running = self.lock();
        if running.get(&run_id).is_some_and(|task| task.id == id) {
            running.remove(&run_id);
        }
        drop(running);
        // Nobody waiting is fine.
        let _ = self.done.send(run_id);
    }
}

impl Postmortems {
    pub(crate) fn new(
        services: Arc<Services>,
        accounts: Arc<crate::accounts::Accounts>,
    ) -> Postmortems {
        Postmortems {
            services,
            accounts,
            tasks: Arc::new(Tasks {
                running: Mutex::default(),
                next_id: AtomicU64::new(0),
                done: broadcast::channel(64).0,
            }),
        }
    }

    /// Runs the rest of `job` in the background.
    pub(crate) fn spawn(&self, job: Job) {
        let run_id = job.run_id;
        let id = self.tasks.next_id.fetch_add(1, Ordering::Relaxed);
        let cancel = self.services.shutdown.child_token();
        let (services, tasks) = (Arc::clone(&self.services), Arc::clone(&self.tasks));
        let accounts = Arc::clone(&self.accounts);
        let work = {
            let cancel = cancel.clone();
            async move {
                analysis::run(&services, &accounts, job, &cancel).await;
                tasks.finished(run_id, id);
            }
        };
        // Holding the map while spawning: the task's own removal waits for its insertion.
        let mut running = self.tasks.lock();
        let handle = tokio::spawn(crate::process::ledger::scope(
            Arc::clone(&self.services.ledger),
            work.instrument(info_span!("postmortem", %run_id)),
        ));
        running.insert(run_id, Task { id, cancel, handle });
    }

    /// Whether this runtime runs a postmortem of the run now.
    fn running(&self, run_id: RunId) -> bool {
        self.tasks.lock().contains_key(&run_id)
    }

    /// Runs whose postmortem task ends from now on.
    pub(crate) fn done(&self) -> broadcast::Receiver<RunId> {
        self.tasks.done.subscribe()
    }

    /// Returns once this runtime runs no postmortem of the run (`done` taken before looking).
    pub(crate) async fn until_finished(&self, run_id: RunId, mut done: broadcast::Receiver<RunId>) {
        while self.running(run_id) {
            match done.recv().await {
                Ok(id) if id == run_id => break,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }

    /// Stops the run's postmortem, if this runtime runs one; it records its end as failed.
    async fn stop(&self, run_id: RunId) {
        let task = self.tasks.lock().remove(&run_id);
        if let Some(task) = task {
            task.cancel.cancel();
            let _ = task.handle.await;
        }
    }

    /// Stops every postmortem (at shutdown); each records its end.
    pub(crate) async fn stop_all(&self) {
        let tasks: Vec<Task> = self.tasks.lock().drain().map(|(_, task)| task).collect();
        for task in &tasks {
            task.cancel.cancel();
        }
        for task in tasks {
            let _ = task.handle.await;
        }
    }

    /// After a run settles: records `POSTMORTEM_START` and takes the snapshots when its
    /// `postmortem` key says so and this ending has had none yet. The caller spawns the job
    /// once the run's slot is free.
    pub(crate) async fn begin_after_end(&self, run_id: RunId) -> Option<Job> {
        let records = self.services.journal.read_run(run_id).await.ok()?;
        let view = RunView::fold(&records)?;
        let run = self.services.run_context(run_id).await.ok()?;
        let wanted = match run.config.postmortem {
            PostmortemWhen::Always => true,
            PostmortemWhen::Failed => view.status == RunStatus::Failed,
            PostmortemWhen::Never => false,
        };
        if !view.status.is_terminal() || !wanted {
            return None;
        }
        let end = records.iter().rposition(|r| r.event.is_terminal())?;
        if records[end..]
            .iter()
            .any(|r| matches!(r.event, Event::PostmortemStart(_)))
        {
            return None;
        }
        // A run that ended before its first step (canceled while pending, no worktree) has
        // nothing an agent could analyse; its log says all there is.
        if !records
            .iter()
            .any(|r| matches!(r.event, Event::StepStarted(_)))
        {
            return None;
        }
        let reason = format!("run {}", view.status.as_str().to_ascii_lowercase());
        if let Err(error) = self.start(run_id, reason).await {
            warn!(%run_id, %error, "cannot start the postmortem");
            return None;
        }
        let mut job = Job {
            run_id,
            model: None,
            prompt_only: false,
            snapshot: false,
            problems: Vec::new(),
        };
        if let Err(problem) = analysis::take_snapshots(&self.services, run_id).await {
            job.problems.push(problem);
        }
        Some(job)
    }

    /// A postmortem asked for now, whatever the run's `postmortem` key says.
    pub(crate) async fn on_demand(
        &self,
        run_id: RunId,
        model: Option<String>,
        prompt_only: bool,
    ) -> Result<(), RuntimeError> {
        let state = self.services.journal.state(run_id).await?;
        if state.status().is_none() {
            return Err(RuntimeError::UnknownRun(run_id));
        }
        let reason = match (&model, prompt_only) {
            (_, true) => "prompt only".to_owned(),
            (Some(model), false) => format!("on demand (model {model})"),
            (None, false) => "on demand".to_owned(),
        };
        self.start(run_id, reason).await?;
        self.spawn(Job {
            run_id,
            model,
            prompt_only,
            snapshot: true,
            problems: Vec::new(),
        });
        Ok(())
    }

    async fn start(&self, run_id: RunId, reason: String) -> Result<(), RuntimeError> {
        info!(%run_id, %reason, "postmortem started");
        let start = Command::StartPostmortem(PostmortemStart { reason });
        self.services.journal.execute(run_id, vec![start]).await?;
        Ok(())
    }

    /// A runtime starting on a log whose postmortems were cut short (a crash) ends them, so the
    /// runs can be retried and analysed again. Only a runtime that owns every run does this,
    /// and only for runs last changed before `started_ms`, when it started: a postmortem it
    /// begins itself meanwhile is left alone.
    pub(crate) async fn recover(self: Arc<Self>, started_ms: i64) {
        // A store that cannot be reached yet (a daemon started while its server is down) is
        // waited for: the postmortems a stop cut short are ended once it answers.
        let journal = &self.services.journal;
        let read = crate::journal::patiently(
            &self.services.shutdown,
            std::time::Duration::from_secs(1),
            || journal.read(|store| store.list_runs(&loop_store::RunQuery::default())),
        );
        let Ok(runs) = read.await else {
            return;
        };
        for view in runs {
            if view.postmortem.as_deref() != Some("running") || view.updated_ms >= started_ms {
                continue;
            }
            let end = PostmortemEnd {
                status: PostmortemStatus::Failed,
                reason: Some("interrupted: the runtime stopped before it ended".to_owned()),
                paid: Default::default(),
            };
            let ended = self
                .services
                .journal
                .execute(view.id, vec![Command::EndPostmortem(end)])
                .await;
            if ended.is_ok() {
                info!(run_id = %view.id, "ended a postmortem cut short by a stop");
                let _ = self.services.write_projections(view.id).await;
            }
        }
    }

    /// Before a retry: a postmortem this runtime runs on the FAILED run is stopped (a retry
    /// must not wait for minutes of analysis); one run by another process still refuses it.
    pub(crate) async fn yield_to_retry(&self, run_id: RunId) {
        if let Ok(state) = self.services.journal.state(run_id).await
            && state.status() == Some(RunStatus::Failed)
            && state.postmortem_running()
        {
            self.stop(run_id).await;
        }
    }

    /// Before a person sends a finished run back to work: a postmortem still analysing it
    /// stops (it records its end), since the run is about to change under it.
    pub(crate) async fn yield_to_changes(&self, run_id: RunId) {
        if let Ok(state) = self.services.journal.state(run_id).await
            && state.postmortem_running()
        {
            self.stop(run_id).await;
        }
    }

    /// The state of the run's last postmortem and the files of its `analysis/` directory.
    pub(crate) async fn report(&self, run_id: RunId) -> Result<PostmortemReport, RuntimeError> {
        let records = self.services.journal.read_run(run_id).await?;
        let run = self.services.run_context(run_id).await?;
        let dir = run.files.path(ANALYSIS_DIR);
        let mut report = PostmortemReport {
            run_id,
            status: None,
            started_because: None,
            reason: None,
            dir: dir.to_string_lossy().into_owned(),
            files: list_files(&dir),
        };
        for record in &records {
            match &record.event {
                Event::PostmortemStart(start) => {
                    report.status = Some(PostmortemState::Running);
                    report.started_because = Some(start.reason.clone());
                    report.reason = None;
                }
                Event::PostmortemEnd(end) => {
                    report.status = Some(end.status.into());
                    report.reason.clone_from(&end.reason);
                }
                _ => {}
            }
        }
        Ok(report)
    }
}

fn list_files(dir: &Path) -> Vec<AnalysisFile> {
    let mut files: Vec<AnalysisFile> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| AnalysisFile {
            name: entry.file_name().to_string_lossy().into_owned(),
            bytes: entry.metadata().map_or(0, |m| m.len()),
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}
