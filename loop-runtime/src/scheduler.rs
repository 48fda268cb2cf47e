//! The scheduler: which runs get a driver, and when.
//!
//! It claims runs when something changes (a submit, a resume, a retry, a run ending), never on
//! a timer, within `max_concurrency` and `max_runs_per_workspace`, in the queue policy's order.
//! Each claimed run gets a driver task; when the task ends with the run settled, the scheduler
//! starts the postmortem, cleans up the worktree, writes the projection files and claims again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use loop_core::projection::{RunView, WaitCode, Waiting};
use loop_core::{Command, RunId, RunStatus};
use loop_store::RunQuery;
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::accounts::Accounts;
use crate::cluster::{Drivers, Membership};
use crate::driver::{Driver, DriverEnd};
use crate::error::RuntimeError;
use crate::postmortem::Postmortems;
use crate::services::Services;

/// Which runs a runtime's scheduler drives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Claim {
    /// Every PENDING run, and every RUNNING run no one drives: what a daemon does.
    #[default]
    All,
    /// Only runs submitted through this runtime: what a one-off front end (`loopctl exec`)
    /// does, so it never drives a run that belongs to a daemon on the same log.
    Submitted,
    /// None: the runtime reads, reviews and records, but starts no agent.
    Nothing,
}

/// The order in which pending runs are claimed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueuePolicy {
    #[default]
    Fifo,
    NewestFirst,
}

/// How many runs execute at once, and which.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_concurrency: usize,
    pub max_per_workspace: usize,
    pub queue_policy: QueuePolicy,
    pub claim: Claim,
}

/// A run with a driver.
struct Running {
    cancel: CancellationToken,
    task: JoinHandle<()>,
    workspace: String,
}

/// A run no driver may take, until dropped ([`Scheduler::stop`]).
pub(crate) struct Held<'a> {
    scheduler: &'a Scheduler,
    run_id: RunId,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.scheduler
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.run_id);
        self.scheduler.wake();
    }
}

pub(crate) struct Scheduler {
    services: Arc<Services>,
    postmortems: Arc<Postmortems>,
    /// The accounts, for the drivers to ask before each agent call and for the waits shown.
    accounts: Arc<Accounts>,
    /// In a cluster: which runs this node may take, and its claims.
    membership: Option<Arc<Membership>>,
    limits: Limits,
    /// Runs submitted through this runtime (for [`Claim::Submitted`]).
    submitted: Mutex<HashSet<RunId>>,
    running: Mutex<HashMap<RunId, Running>>,
    /// Runs being paused or canceled: their driver is stopped but their status still says
    /// RUNNING until the command is recorded, and a claim must not take them for crashed.
    held: Mutex<HashSet<RunId>>,
    /// Runs whose driver ended and whose projection files are written.
    settled: broadcast::Sender<RunId>,
    wake: Notify,
}

/// How often a failure that the log refused is offered to it again.
const STORAGE_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

impl Scheduler {
    pub(crate) fn new(
        services: Arc<Services>,
        postmortems: Arc<Postmortems>,
        accounts: Arc<Accounts>,
        membership: Option<Arc<Membership>>,
        limits: Limits,
    ) -> Scheduler {
        Scheduler {
            services,
            postmortems,
            accounts,
            membership,
            limits,
            submitted: Mutex::default(),
            running: Mutex::default(),
            held: Mutex::default(),
            settled: broadcast::channel(256).0,
            wake: Notify::new(),
        }
    }

    /// Claims runs whenever woken, until shutdown.
    pub(crate) async fn run(self: Arc<Self>) {
        let shutdown = self.services.shutdown.clone();
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            match self.claim().await {
                Ok(()) => {}
                // A store that cannot be reached says so in `/health`, and a node wakes its
                // scheduler at every heartbeat: a warning each time would only repeat it.
                Err(RuntimeError::Store(error)) if error.is_unavailable() => {
                    tracing::debug!(%error, "cannot claim runs; trying at the next wake-up");
                }
                // The next wake retries; a store that failed now may answer then.
                Err(error) => {
                    tracing::warn!(%error, "cannot claim runs; trying at the next wake-up")
                }
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Something changed: claim what can run now.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// A run this runtime submitted (the only kind a [`Claim::Submitted`] runtime drives).
    pub(crate) fn submitted(&self, run_id: RunId) {
        self.submitted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run_id);
    }

    pub(crate) fn is_running(&self, run_id: RunId) -> bool {
        self.running().contains_key(&run_id)
    }

    /// How many runs have a driver now.
    pub(crate) fn running_count(&self) -> usize {
        self.running().len()
    }

    /// The most runs this scheduler drives at once.
    pub(crate) fn capacity(&self) -> usize {
        self.limits.max_concurrency
    }

    /// Runs whose driver ended and whose files are written, from now on.
    pub(crate) fn settled(&self) -> broadcast::Receiver<RunId> {
        self.settled.subscribe()
    }

    fn running(&self) -> MutexGuard<'_, HashMap<RunId, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the run's driver, if it has one, and waits for it to end. No driver takes the run
    /// again while the returned hold lives: the caller records why it stopped (a pause, a
    /// cancel) first.
    pub(crate) async fn stop(&self, run_id: RunId) -> Held<'_> {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run_id);
        let held = Held {
            scheduler: self,
            run_id,
        };
        let running = self.running().remove(&run_id);
        if let Some(running) = running {
            running.cancel.cancel();
            let _ = running.task.await;
        }
        held
    }

    /// Stops every driver; the runs they drove.
    pub(crate) async fn stop_all(&self) -> Vec<RunId> {
        let ids: Vec<RunId> = self.running().keys().copied().collect();
        for run_id in &ids {
            drop(self.stop(*run_id).await);
        }
        ids
    }

    async fn claim(self: &Arc<Self>) -> Result<(), RuntimeError> {
        if self.limits.claim == Claim::Nothing {
            return Ok(());
        }
        let (candidates, elsewhere) = self.candidates().await?;
        for view in candidates {
            let held = self
                .held
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&view.id);
            let mut running = self.running();
            if held || running.contains_key(&view.id) {
                continue;
            }
            if running.len() >= self.limits.max_concurrency {
                break;
            }
            let in_workspace = running
                .values()
                .filter(|r| r.workspace == view.workspace_root)
                .count()
                + elsewhere.get(&view.workspace_root).copied().unwrap_or(0);
            if in_workspace >= self.limits.max_per_workspace {
                continue;
            }
            let cancel = self.services.shutdown.child_token();
            let span = tracing::info_span!("run", run_id = %view.id);
            let task = tokio::spawn(crate::process::ledger::scope(
                Arc::clone(&self.services.ledger),
                tracing::Instrument::instrument(
                    Arc::clone(self).drive(view.id, view.node.clone(), cancel.clone()),
                    span,
                ),
            ));
            let workspace = view.workspace_root.clone();
            running.insert(
                view.id,
                Running {
                    cancel,
                    task,
                    workspace,
                },
            );
        }
        Ok(())
    }

    /// RUNNING runs first (nobody drives them: a crash), then PENDING ones in queue order; and,
    /// in a cluster, how many runs other live nodes drive in each workspace (the per-workspace
    /// limit is the cluster's).
    async fn candidates(&self) -> Result<(Vec<RunView>, HashMap<String, usize>), RuntimeError> {
        let (running, pending) = self
            .services
            .journal
            .read(move |store| {
                let of = |status| RunQuery {
                    status: Some(status),
                    ..RunQuery::default()
                };
                Ok((
                    store.list_runs(&of(RunStatus::Running))?,
                    store.list_runs(&of(RunStatus::Pending))?,
                ))
            })
            .await?;
        // Newest first from the store: FIFO takes them from the back.
        let mut candidates: Vec<RunView> = running.into_iter().rev().collect();
        match self.limits.queue_policy {
            QueuePolicy::Fifo => candidates.extend(pending.into_iter().rev()),
            QueuePolicy::NewestFirst => candidates.extend(pending),
        }
        if self.limits.claim == Claim::Submitted {
            let submitted = self.submitted.lock().unwrap_or_else(|e| e.into_inner());
            candidates.retain(|view| submitted.contains(&view.id));
        }
        let elsewhere = match &self.membership {
            Some(membership) => membership.keep_takeable(&mut candidates).await?,
            None => HashMap::new(),
        };
        Ok((candidates, elsewhere))
    }

    async fn drive(
        self: Arc<Self>,
        run_id: RunId,
        seen_claim: Option<String>,
        cancel: CancellationToken,
    ) {
        let claimed = match &self.membership {
            Some(membership) => membership.claim(run_id, seen_claim.as_deref()).await,
            None => Ok(()),
        };
        let result = match claimed {
            Ok(()) => {
                Driver::start(
                    Arc::clone(&self.services),
                    Arc::clone(&self.accounts),
                    run_id,
                    cancel,
                )
                .await
            }
            Err(error) => Err(error),
        };
        let settled = match result {
            Ok(DriverEnd::Settled) => true,
            // Stopped from outside, or shut down while waiting for the log: nothing to record.
            Ok(DriverEnd::Stopped) | Err(RuntimeError::Shutdown) => false,
            // Another node has the run (it claimed it first, or took it over): its to drive.
            Err(RuntimeError::Fenced { node, .. }) => {
                tracing::info!(%run_id, %node, "another node has this run");
                self.running().remove(&run_id);
                false
            }
            // In a cluster, a store that cannot be reached fails no run: the driver lets go,
            // and the node claims the run again once the store answers (the heartbeat wakes
            // the scheduler), recording its open step INTERRUPTED as after any stop.
            Err(RuntimeError::Store(error))
                if error.is_unavailable() && self.membership.is_some() =>
            {
                tracing::warn!(%run_id, %error, "the store cannot be reached: this node lets the run go until it can");
                self.running().remove(&run_id);
                false
            }
            // A pause recorded through another node (or another runtime on this log) between
            // this driver's last read and its next append: the log refuses the append because
            // the run is PAUSED. The run was stopped, not broken; failing it here would turn a
            // person's pause into a FAILED run (the fault suite's seed 3166045006908105438).
            Err(RuntimeError::Domain(error)) if self.paused_under(run_id).await => {
                tracing::info!(%run_id, %error, "the run was paused elsewhere: this driver stops");
                self.running().remove(&run_id);
                false
            }
            Err(error) => {
                self.record_runtime_failure(run_id, error).await;
                true
            }
        };
        if settled {
            self.settle(run_id).await;
        }
    }

    /// Whether the log now says the run is PAUSED: its driver's append was refused because a
    /// pause landed under it.
    async fn paused_under(&self, run_id: RunId) -> bool {
        self.services
            .journal
            .state(run_id)
            .await
            .is_ok_and(|state| state.status() == Some(RunStatus::Paused))
    }

    /// Whatever failed, the run must not be left RUNNING with no one driving it. When the log
    /// itself refuses writes, the failure is recorded as soon as it takes writes again.
    async fn record_runtime_failure(&self, run_id: RunId, error: RuntimeError) {
        let reason = format!("the runtime failed: {error}");
        loop {
            let failed = Command::Fail {
                exit_reason: loop_core::event::ExitReason::Failed,
                reason: reason.clone(),
                cause: Some(loop_core::event::FailureCause::Runtime),
                at_ms: self.services.clock.now_ms(),
            };
            match self.services.journal.execute(run_id, vec![failed]).await {
                Err(RuntimeError::Store(_)) => {}
                _ => return,
            }
            tokio::select! {
                () = tokio::time::sleep(STORAGE_RETRY) => {}
                () = self.services.shutdown.cancelled() => return,
            }
        }
    }

    /// After a run settled: its postmortem's snapshots (before a failed run's worktree goes),
    /// the cleanup, the projection files; then the slot is free and the analyses run.
    async fn settle(&self, run_id: RunId) {
        let postmortem = self.postmortems.begin_after_end(run_id).await;
        let _ = self.services.cleanup_worktree(run_id).await;
        let _ = self.services.write_projections(run_id).await;
        self.running().remove(&run_id);
        let _ = self.settled.send(run_id);
        self.wake();
        if let Some(job) = postmortem {
            self.postmortems.spawn(job);
        }
    }

    /// Says, in the view, why a run that is not moving waits: a log that refuses writes, a slot,
    /// a busy workspace; a usage-limit wait from the log that is over is dropped.
    pub(crate) fn explain_wait(&self, view: &mut RunView) {
        let now = self.services.clock.now_ms();
        if view
            .waiting
            .as_ref()
            .is_some_and(|wait| wait.until_ms.is_some_and(|until| until <= now))
        {
            view.waiting = None;
        }
        let storage_full = self.services.storage.held(view.id).map(|held| {
            Waiting::new(
                WaitCode::StorageFull,
                format!(
                    "cannot write {} since {}: {}; the run goes on once there is space",
                    held.file,
                    loop_core::time::rfc3339_ms(held.since_ms),
                    held.reason
                ),
            )
        });
        if view.status.is_terminal() || view.status == RunStatus::Paused {
            // A run that ended waits for nothing but its files (`summary.json`, `run.log`, …),
            // which a full disk may hold.
            if storage_full.is_some() {
                view.waiting = storage_full;
            }
            return;
        }
        if let Some(trouble) = self.services.journal.health().trouble() {
            view.waiting = Some(Waiting::new(
                WaitCode::StoreUnavailable,
                format!(
                    "the event log refuses writes since {}: {}; the run goes on once it takes them",
                    loop_core::time::rfc3339_ms(trouble.since_ms),
                    trouble.reason
                ),
            ));
            return;
        }
        if storage_full.is_some() {
            view.waiting = storage_full;
            return;
        }
        if view.status == RunStatus::Pending && self.limits.claim != Claim::Nothing {
            view.waiting = self.queue_reason(view);
        }
        // A running run its accounts hold, driven here: as its driver's decision says. A pool
        // run's whatever the log's last wait (which lasts into the next call); a run of one
        // account's when the log shows no wait of its own (the limit its call met).
        if view.status == RunStatus::Running && self.running().contains_key(&view.id) {
            let pooled = self.accounts.pooled(view.id);
            if pooled || view.waiting.is_none() {
                view.waiting = self.accounts.explain(view.id).map(|hold| {
                    let waiting = Waiting::new(hold.code(), hold.to_string());
                    match hold.until_ms() {
                        Some(until) => waiting.until(until),
                        None => waiting,
                    }
                });
            }
        }
    }

    fn queue_reason(&self, view: &RunView) -> Option<Waiting> {
        let running = self.running();
        if running.contains_key(&view.id) {
            return None;
        }
        let limits = &self.limits;
        let busy: Vec<RunId> = running
            .iter()
            .filter(|(_, r)| r.workspace == view.workspace_root)
            .map(|(id, _)| *id)
            .collect();
        Some(if running.len() >= limits.max_concurrency {
            Waiting::new(
                WaitCode::WaitingForSlot,
                format!(
                    "waiting for a slot: {} of {} runs are executing (--max-concurrency)",
                    running.len(),
                    limits.max_concurrency
                ),
            )
        } else if busy.len() >= limits.max_per_workspace {
            Waiting::new(
                WaitCode::WorkspaceBusy,
                format!(
                    "workspace busy: run {} is executing in {} (--max-runs-per-workspace {})",
                    busy[0], view.workspace_root, limits.max_per_workspace
                ),
            )
        } else {
            Waiting::new(WaitCode::Queued, "queued: the scheduler starts it next")
        })
    }
}

impl Drivers for Scheduler {
    fn capacity(&self) -> usize {
        Scheduler::capacity(self)
    }

    fn running_count(&self) -> usize {
        Scheduler::running_count(self)
    }

    fn is_running(&self, run_id: RunId) -> bool {
        Scheduler::is_running(self, run_id)
    }

    fn wake(&self) {
        Scheduler::wake(self);
    }

    async fn stop(&self, run_id: RunId) {
        drop(Scheduler::stop(self, run_id).await);
    }

    async fn stop_all(&self) {
        Scheduler::stop_all(self).await;
    }
}
