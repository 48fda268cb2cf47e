//! [`Runtime`]: the engine an embedder holds — submit runs, control them, watch them.
//!
//! A scheduler task claims runs when something changes (a submit, a resume, a retry, a run
//! ending), never on a timer, within `max_concurrency` and `max_runs_per_workspace`. Each
//! claimed run gets a driver task. Control commands stop the driver first, then record what
//! happened, so the log never shows a step finishing twice.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use loop_core::config::Config;
use loop_core::layout::step_log_name;
use loop_core::projection::{Export, RunView, StepView, Waiting};
use loop_core::{Command, EventRecord, RunId, RunStatus, Seq, StepId};
use loop_store::{EventStore, RunQuery};
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::agent::{Agent, CommandAgent};
use crate::artifacts::RunFiles;
use crate::clock::{Clock, SystemClock};
use crate::driver::{Driver, DriverEnd};
use crate::error::RuntimeError;
use crate::journal::{AppendLatency, Journal, blocking};
use crate::output::OutputStream;
use crate::request::{self, RunRequest};
use crate::step_output::Chunk;
use crate::stream::EventStream;
use crate::worktree::{GitWorktrees, InPlace, WorktreeProvider};

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

struct Running {
    cancel: CancellationToken,
    task: JoinHandle<()>,
    workspace: String,
}

pub(crate) struct Shared {
    pub(crate) journal: Journal,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) data_dir: PathBuf,
    pub(crate) live: broadcast::Sender<Chunk>,
    /// Where this runtime's children are recorded while they live.
    pub(crate) ledger: Arc<crate::process::ledger::Ledger>,
    agents: HashMap<String, Arc<dyn Agent>>,
    providers: HashMap<String, Arc<dyn WorktreeProvider>>,
    max_concurrency: usize,
    max_per_workspace: usize,
    queue_policy: QueuePolicy,
    claim: Claim,
    /// Runs submitted through this runtime (for [`Claim::Submitted`]).
    submitted: Mutex<std::collections::HashSet<RunId>>,
    running: Mutex<HashMap<RunId, Running>>,
    /// Runs whose driver ended and whose projection files are written.
    settled: broadcast::Sender<RunId>,
    wake: Notify,
    pub(crate) shutdown: CancellationToken,
    /// Postmortems running in the background ([`crate::postmortem`]).
    pub(crate) postmortems: crate::postmortem::Postmortems,
    /// Notification delivery ([`crate::notify`]).
    pub(crate) notifier: crate::notify::Notifier,
    /// Held while the projection files of a run are read from the log and written, so an
    /// older fold never overwrites a newer one.
    projections: tokio::sync::Mutex<()>,
}

impl Shared {
    pub(crate) fn agent(&self, name: &str) -> Option<Arc<dyn Agent>> {
        self.agents.get(name).cloned()
    }

    pub(crate) fn worktree_provider(&self, name: &str) -> Option<Arc<dyn WorktreeProvider>> {
        self.providers.get(name).cloned()
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Says, in the view, why a run that is not moving waits: a log that refuses writes, a slot,
    /// a busy workspace; a usage-limit wait from the log that is over is dropped.
    fn explain_wait(&self, view: &mut RunView) {
        let now = self.clock.now_ms();
        if view
            .waiting
            .as_ref()
            .is_some_and(|wait| wait.until_ms.is_some_and(|until| until <= now))
        {
            view.waiting = None;
        }
        if view.status.is_terminal() || view.status == RunStatus::Paused {
            return;
        }
        if let Some(trouble) = self.journal.health().trouble() {
            view.waiting = Some(Waiting::new(
                "store_unavailable",
                format!(
                    "the event log refuses writes since {}: {}; the run goes on once it takes them",
                    loop_core::time::rfc3339_ms(trouble.since_ms),
                    trouble.reason
                ),
            ));
            return;
        }
        if view.status != RunStatus::Pending || self.claim == Claim::Nothing {
            return;
        }
        let running = self.running();
        if running.contains_key(&view.id) {
            return;
        }
        let in_workspace: Vec<RunId> = running
            .iter()
            .filter(|(_, r)| r.workspace == view.workspace_root)
            .map(|(id, _)| *id)
            .collect();
        view.waiting = Some(if running.len() >= self.max_concurrency {
            Waiting::new(
                "waiting_for_slot",
                format!(
                    "waiting for a slot: {} of {} runs are executing (--max-concurrency)",
                    running.len(),
                    self.max_concurrency
                ),
            )
        } else if in_workspace.len() >= self.max_per_workspace {
            Waiting::new(
                "workspace_busy",
                format!(
                    "workspace busy: run {} is executing in {} (--max-runs-per-workspace {})",
                    in_workspace[0], view.workspace_root, self.max_per_workspace
                ),
            )
        } else {
            Waiting::new("queued", "queued: the scheduler starts it next")
        });
    }

    /// Removes a FAILED or CANCELED run's worktree when `worktree_cleanup` says so, and records
    /// it. A COMPLETED run keeps its worktree for review.
    pub(crate) async fn cleanup_worktree(&self, run_id: RunId) -> Result<(), RuntimeError> {
        let state = self.journal.state(run_id).await?;
        let Some(created) = state.created() else {
            return Ok(());
        };
        let config = Config::from_frozen(&created.config);
        let ended_badly = matches!(
            state.status(),
            Some(RunStatus::Failed | RunStatus::Canceled)
        );
        if ended_badly && config.flag("worktree_cleanup") {
            self.remove_worktree_of(run_id).await?;
        }
        Ok(())
    }

    /// Removes the worktree the run's log records, through its provider, and records
    /// `WORKTREE_REMOVED`; the path removed, `None` when the run has none.
    pub(crate) async fn remove_worktree_of(
        &self,
        run_id: RunId,
    ) -> Result<Option<String>, RuntimeError> {
        let state = self.journal.state(run_id).await?;
        let (Some(created), Some(worktree)) = (state.created(), state.worktree()) else {
            return Ok(None);
        };
        if worktree.provider == "none" {
            return Ok(None);
        }
        let failed = |reason: String| RuntimeError::InvalidRequest {
            what: format!("worktree {}", worktree.path),
            reason,
        };
        let provider = self.worktree_provider(&worktree.provider).ok_or_else(|| {
            failed(format!(
                "this runtime has no worktree provider {:?} to remove it",
                worktree.provider
            ))
        })?;
        let config = Config::from_frozen(&created.config);
        let workspace = crate::worktree::Workspace {
            provider: worktree.provider.clone(),
            path: PathBuf::from(&worktree.path),
            base_branch: worktree.base_branch.clone(),
            run_branch: worktree.run_branch.clone(),
            reused: worktree.reused,
        };
        provider
            .remove(&workspace, &config)
            .await
            .map_err(|error| failed(error.to_string()))?;
        let removed = loop_core::event::WorktreeRemoved {
            path: worktree.path.clone(),
        };
        self.journal
            .execute(run_id, vec![Command::RemoveWorktree(removed)])
            .await?;
        Ok(Some(worktree.path.clone()))
    }

    /// Writes every projection file of a run from its log.
    pub(crate) async fn write_projections(&self, run_id: RunId) -> Result<(), RuntimeError> {
        let _writing = self.projections.lock().await;
        let records = self.journal.read_run(run_id).await?;
        let Some(export) = Export::of(&records) else {
            return Ok(());
        };
        let state = self.journal.state(run_id).await?;
        let Some(created) = state.created() else {
            return Ok(());
        };
        let config = Config::from_frozen(&created.config);
        let files = RunFiles::new(created, run_id, &config, &self.data_dir);
        if files.create().is_err() {
            return Ok(());
        }
        for (name, text) in export.files() {
            if name == "summary.json" && !config.flag("summary_json") {
                continue;
            }
            files
                .write_projection(name, text)
                .map_err(|source| RuntimeError::Io {
                    what: name.to_owned(),
                    source,
                })?;
        }
        Ok(())
    }
}

/// Builds a [`Runtime`].
pub struct RuntimeBuilder {
    store: Option<Arc<dyn EventStore>>,
    data_dir: Option<PathBuf>,
    clock: Arc<dyn Clock>,
    agents: HashMap<String, Arc<dyn Agent>>,
    providers: HashMap<String, Arc<dyn WorktreeProvider>>,
    max_concurrency: usize,
    max_per_workspace: usize,
    queue_policy: QueuePolicy,
    claim: Claim,
}

impl std::fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl RuntimeBuilder {
    /// The event log (required).
    pub fn store(mut self, store: Arc<dyn EventStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Where the global artifact mirror goes when `global_log_dir` is unset (required).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Adds or replaces the agent adapter chosen by `agent=<name>`.
    pub fn agent(mut self, name: &str, agent: Arc<dyn Agent>) -> Self {
        self.agents.insert(name.to_owned(), agent);
        self
    }

    /// Adds or replaces the provider chosen by `worktree_provider=<name>`.
    pub fn worktree_provider(mut self, provider: Arc<dyn WorktreeProvider>) -> Self {
        self.providers.insert(provider.name().to_owned(), provider);
        self
    }

    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.max(1);
        self
    }

    pub fn max_runs_per_workspace(mut self, n: usize) -> Self {
        self.max_per_workspace = n.max(1);
        self
    }

    pub fn queue_policy(mut self, policy: QueuePolicy) -> Self {
        self.queue_policy = policy;
        self
    }

    /// Which runs the scheduler drives (default: all).
    pub fn claim(mut self, claim: Claim) -> Self {
        self.claim = claim;
        self
    }

    /// Starts the runtime: recovers runs the log shows RUNNING and starts the scheduler. Must be
    /// called inside a tokio runtime.
    pub fn build(self) -> Result<Runtime, RuntimeError> {
        let missing = |what: &str| RuntimeError::InvalidRequest {
            what: "runtime".to_owned(),
            reason: format!("{what} is required"),
        };
        let store = self.store.ok_or_else(|| missing("a store"))?;
        let data_dir = self.data_dir.ok_or_else(|| missing("a data dir"))?;
        let (live, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            journal: Journal::new(store, Arc::clone(&self.clock)),
            clock: self.clock,
            ledger: Arc::new(crate::process::ledger::Ledger::new(&data_dir)),
            data_dir,
            live,
            agents: self.agents,
            providers: self.providers,
            max_concurrency: self.max_concurrency,
            max_per_workspace: self.max_per_workspace,
            queue_policy: self.queue_policy,
            claim: self.claim,
            submitted: Mutex::default(),
            running: Mutex::new(HashMap::new()),
            settled: broadcast::channel(256).0,
            wake: Notify::new(),
            shutdown: CancellationToken::new(),
            postmortems: crate::postmortem::Postmortems::default(),
            notifier: crate::notify::Notifier::default(),
            projections: tokio::sync::Mutex::new(()),
        });
        if shared.claim == Claim::All {
            let started_ms = shared.clock.now_ms();
            tokio::spawn(crate::postmortem::recover(Arc::clone(&shared), started_ms));
        }
        if shared.claim != Claim::Nothing {
            crate::notify::Notifier::start(&shared);
        }
        let scheduler = tokio::spawn(schedule(Arc::clone(&shared)));
        Ok(Runtime {
            shared,
            scheduler: Arc::new(Mutex::new(Some(scheduler))),
        })
    }
}

/// The loop engine. Cheap to clone; every clone drives the same runs.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) shared: Arc<Shared>,
    scheduler: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("data_dir", &self.shared.data_dir)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    pub fn builder() -> RuntimeBuilder {
        let mut agents: HashMap<String, Arc<dyn Agent>> = HashMap::new();
        agents.insert("command".to_owned(), Arc::new(CommandAgent));
        agents.insert("claude".to_owned(), Arc::new(crate::agent::ClaudeAgent));
        agents.insert("codex".to_owned(), Arc::new(crate::agent::CodexAgent));
        agents.insert(
            "demo".to_owned(),
            Arc::new(crate::agent::DemoAgent::new(
                std::time::Duration::from_millis(40),
            )),
        );
        let mut providers: HashMap<String, Arc<dyn WorktreeProvider>> = HashMap::new();
        providers.insert("none".to_owned(), Arc::new(InPlace));
        providers.insert("git".to_owned(), Arc::new(GitWorktrees));
        providers.insert("worktrunk".to_owned(), Arc::new(crate::worktree::Worktrunk));
        RuntimeBuilder {
            store: None,
            data_dir: None,
            clock: Arc::new(SystemClock),
            agents,
            providers,
            max_concurrency: 3,
            max_per_workspace: 1,
            queue_policy: QueuePolicy::Fifo,
            claim: Claim::All,
        }
    }

    /// Resolves the request's configuration and records a new PENDING run.
    pub async fn submit(&self, request: RunRequest) -> Result<RunView, RuntimeError> {
        let created = request::resolve(&request)?;
        let agent = created.config.get("agent").map_or("", String::as_str);
        if self.shared.agent(agent).is_none() {
            let mut known: Vec<&str> = self.shared.agents.keys().map(String::as_str).collect();
            known.sort_unstable();
            return Err(RuntimeError::InvalidRequest {
                what: "agent".to_owned(),
                reason: format!(
                    "no agent adapter named {agent:?} (known: {})",
                    known.join(", ")
                ),
            });
        }
        let run_id = RunId::from_uuid(uuid::Uuid::now_v7());
        self.shared
            .submitted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run_id);
        self.shared
            .journal
            .execute(run_id, vec![Command::Create(created)])
            .await?;
        self.shared.wake.notify_one();
        self.get(run_id).await
    }

    /// The run as the API shows it.
    pub async fn get(&self, run_id: RunId) -> Result<RunView, RuntimeError> {
        let store = Arc::clone(self.shared.journal.store());
        let mut view = blocking(move || store.run_view(run_id))
            .await?
            .ok_or(RuntimeError::UnknownRun(run_id))?;
        self.shared.explain_wait(&mut view);
        Ok(view)
    }

    pub async fn list(&self, query: RunQuery) -> Result<Vec<RunView>, RuntimeError> {
        let store = Arc::clone(self.shared.journal.store());
        let mut views = blocking(move || store.list_runs(&query)).await?;
        for view in &mut views {
            self.shared.explain_wait(view);
        }
        Ok(views)
    }

    /// Whether the log takes writes: `None` when it does, else since when and why not.
    pub fn store_trouble(&self) -> Option<crate::journal::StoreTrouble> {
        self.shared.journal.health().trouble()
    }

    pub async fn steps(&self, run_id: RunId) -> Result<Vec<StepView>, RuntimeError> {
        let store = Arc::clone(self.shared.journal.store());
        blocking(move || store.steps(run_id)).await
    }

    /// Every event after `after`, of one run or of all, then live.
    pub fn subscribe(&self, run: Option<RunId>, after: Seq) -> EventStream {
        let live = self.shared.journal.subscribe();
        EventStream::new(
            Arc::clone(self.shared.journal.store()),
            Arc::clone(self.shared.journal.stream_reads()),
            live,
            run,
            after,
        )
    }

    /// How long appends to the log have taken.
    pub fn append_latency(&self) -> Arc<AppendLatency> {
        Arc::clone(self.shared.journal.latency())
    }

    /// The run's directory (its primary copy, per `artifact_mode`).
    pub async fn run_dir(&self, run_id: RunId) -> Result<PathBuf, RuntimeError> {
        let state = self.shared.journal.state(run_id).await?;
        let created = state.created().ok_or(RuntimeError::UnknownRun(run_id))?;
        let config = Config::from_frozen(&created.config);
        Ok(
            RunFiles::new(created, run_id, &config, &self.shared.data_dir)
                .dir()
                .to_owned(),
        )
    }

    /// Live text output of every step, as it is written (see [`Chunk`]).
    pub fn output(&self) -> broadcast::Receiver<Chunk> {
        self.shared.live.subscribe()
    }

    /// One step's output from a byte offset of its `.log` on: what is written, then live
    /// until the step finishes.
    pub async fn step_output(
        &self,
        run_id: RunId,
        step_id: StepId,
        offset: u64,
    ) -> Result<OutputStream, RuntimeError> {
        // Listen first, so nothing written after the look-up is missed.
        let live = self.shared.live.subscribe();
        let view = self.get(run_id).await?;
        let events = self.subscribe(Some(run_id), view.last_seq);
        let step = self
            .steps(run_id)
            .await?
            .into_iter()
            .find(|step| step.id == step_id)
            .ok_or_else(|| RuntimeError::InvalidRequest {
                what: "step".to_owned(),
                reason: format!("run {run_id} has no step {step_id}"),
            })?;
        let state = self.shared.journal.state(run_id).await?;
        let created = state.created().ok_or(RuntimeError::UnknownRun(run_id))?;
        let config = Config::from_frozen(&created.config);
        let files = RunFiles::new(created, run_id, &config, &self.shared.data_dir);
        let path = files.path(&step_log_name(step.iteration, step.phase, step.attempt));
        Ok(OutputStream::new(
            run_id,
            step_id,
            path,
            offset,
            live,
            events,
            step.status.is_final(),
        ))
    }

    /// Stops the agent at once; the open step is recorded as CANCELED.
    pub async fn pause(&self, run_id: RunId) -> Result<RunView, RuntimeError> {
        self.check(
            run_id,
            Command::Pause {
                reason: None,
                at_ms: 0,
            },
        )
        .await?;
        self.stop_driver(run_id).await;
        let at_ms = self.shared.clock.now_ms();
        self.shared
            .journal
            .execute(
                run_id,
                vec![Command::Pause {
                    reason: None,
                    at_ms,
                }],
            )
            .await?;
        self.get(run_id).await
    }

    /// Continues a paused run from where it stopped.
    pub async fn resume(&self, run_id: RunId) -> Result<RunView, RuntimeError> {
        self.shared
            .journal
            .execute(run_id, vec![Command::Resume])
            .await?;
        self.shared.wake.notify_one();
        self.get(run_id).await
    }

    /// Ends the run for good; the open step is recorded as CANCELED.
    pub async fn cancel(&self, run_id: RunId) -> Result<RunView, RuntimeError> {
        self.check(
            run_id,
            Command::Cancel {
                reason: None,
                at_ms: 0,
            },
        )
        .await?;
        self.stop_driver(run_id).await;
        let at_ms = self.shared.clock.now_ms();
        self.shared
            .journal
            .execute(
                run_id,
                vec![Command::Cancel {
                    reason: None,
                    at_ms,
                }],
            )
            .await?;
        let postmortem = crate::postmortem::begin_after_end(&self.shared, run_id).await;
        self.shared.write_projections(run_id).await?;
        if let Some(job) = postmortem {
            self.shared.postmortems.spawn(&self.shared, job);
        }
        self.get(run_id).await
    }

    /// Sends a FAILED run back to PENDING; its limits count afresh.
    pub async fn retry(&self, run_id: RunId) -> Result<RunView, RuntimeError> {
        crate::postmortem::yield_to_retry(&self.shared, run_id).await;
        self.shared
            .journal
            .execute(run_id, vec![Command::Retry])
            .await?;
        self.shared.wake.notify_one();
        self.get(run_id).await
    }

    /// Waits until the run is COMPLETED, FAILED or CANCELED and its files are written, and
    /// returns it.
    pub async fn wait(&self, run_id: RunId) -> Result<RunView, RuntimeError> {
        loop {
            let mut settled = self.shared.settled.subscribe();
            let view = self.get(run_id).await?;
            if view.status.is_terminal() {
                // The driver may still be writing the projection files.
                while self.shared.running().contains_key(&run_id) {
                    match settled.recv().await {
                        Ok(id) if id == run_id => break,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
                return self.get(run_id).await;
            }
            let mut stream = self.subscribe(Some(run_id), view.last_seq);
            loop {
                match stream.next().await {
                    Some(Ok(record)) if record.event.is_terminal() => break,
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(error),
                    None => return Err(RuntimeError::Shutdown),
                }
            }
        }
    }

    /// Stops every driver and records their open steps as INTERRUPTED; the runs stay RUNNING
    /// and continue when a runtime opens the log again.
    pub async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        self.shared.wake.notify_one();
        let scheduler = self
            .scheduler
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(scheduler) = scheduler {
            let _ = scheduler.await;
        }
        let ids: Vec<RunId> = self.shared.running().keys().copied().collect();
        for run_id in ids {
            self.stop_driver(run_id).await;
            let at_ms = self.shared.clock.now_ms();
            let _ = self
                .shared
                .journal
                .execute(run_id, vec![Command::Recover { at_ms }])
                .await;
        }
        self.shared.postmortems.stop_all().await;
        self.shared.notifier.stop().await;
    }

    /// Refuses early, before any agent is stopped, a command the run's state forbids.
    async fn check(&self, run_id: RunId, command: Command) -> Result<(), RuntimeError> {
        let state = self.shared.journal.state(run_id).await?;
        if state.status().is_none() {
            return Err(RuntimeError::UnknownRun(run_id));
        }
        loop_core::decide(&state, command)?;
        Ok(())
    }

    async fn stop_driver(&self, run_id: RunId) {
        let running = self.shared.running().remove(&run_id);
        if let Some(running) = running {
            running.cancel.cancel();
            let _ = running.task.await;
        }
    }
}

/// Claims runs whenever woken, until shutdown.
async fn schedule(shared: Arc<Shared>) {
    loop {
        if shared.shutdown.is_cancelled() {
            return;
        }
        if let Err(error) = claim(&shared).await {
            // The next wake retries; a store that failed now may answer then.
            tracing::warn!(%error, "cannot claim runs; trying at the next wake-up");
        }
        tokio::select! {
            () = shared.wake.notified() => {}
            () = shared.shutdown.cancelled() => return,
        }
    }
}

async fn claim(shared: &Arc<Shared>) -> Result<(), RuntimeError> {
    if shared.claim == Claim::Nothing {
        return Ok(());
    }
    let store = Arc::clone(shared.journal.store());
    let (running, pending) = blocking(move || {
        let running = store.list_runs(&RunQuery {
            status: Some(RunStatus::Running),
            ..RunQuery::default()
        })?;
        let pending = store.list_runs(&RunQuery {
            status: Some(RunStatus::Pending),
            ..RunQuery::default()
        })?;
        Ok((running, pending))
    })
    .await?;
    // Newest first from the store: FIFO takes them from the back.
    let mut candidates: Vec<RunView> = running.into_iter().rev().collect();
    match shared.queue_policy {
        QueuePolicy::Fifo => candidates.extend(pending.into_iter().rev()),
        QueuePolicy::NewestFirst => candidates.extend(pending),
    }
    if shared.claim == Claim::Submitted {
        let submitted = shared
            .submitted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        candidates.retain(|view| submitted.contains(&view.id));
    }
    for view in candidates {
        let mut running = shared.running();
        if running.contains_key(&view.id) {
            continue;
        }
        if running.len() >= shared.max_concurrency {
            break;
        }
        let in_workspace = running
            .values()
            .filter(|r| r.workspace == view.workspace_root)
            .count();
        if in_workspace >= shared.max_per_workspace {
            continue;
        }
        let cancel = shared.shutdown.child_token();
        let span = tracing::info_span!("run", run_id = %view.id);
        let task = tokio::spawn(crate::process::ledger::scope(
            Arc::clone(&shared.ledger),
            tracing::Instrument::instrument(
                drive(Arc::clone(shared), view.id, cancel.clone()),
                span,
            ),
        ));
        running.insert(
            view.id,
            Running {
                cancel,
                task,
                workspace: view.workspace_root.clone(),
            },
        );
    }
    Ok(())
}

/// How often a failure that the log refused is offered to it again.
const STORAGE_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

async fn drive(shared: Arc<Shared>, run_id: RunId, cancel: CancellationToken) {
    let result = Driver::start(Arc::clone(&shared), run_id, cancel).await;
    let settled = match result {
        Ok(DriverEnd::Settled) => true,
        // Stopped from outside, or shut down while waiting for the log: nothing to record.
        Ok(DriverEnd::Stopped) | Err(RuntimeError::Shutdown) => false,
        Err(error) => {
            // Whatever failed, the run must not be left RUNNING with no one driving it. When the
            // log itself refuses writes (a full disk, a read-only file), the failure is recorded
            // as soon as it takes writes again.
            let reason = format!("the runtime failed: {error}");
            loop {
                let at_ms = shared.clock.now_ms();
                let failed = Command::Fail {
                    exit_reason: loop_core::event::ExitReason::Failed,
                    reason: reason.clone(),
                    at_ms,
                };
                match shared.journal.execute(run_id, vec![failed]).await {
                    Err(RuntimeError::Store(_)) => {}
                    _ => break,
                }
                tokio::select! {
                    () = tokio::time::sleep(STORAGE_RETRY) => {}
                    () = shared.shutdown.cancelled() => break,
                }
            }
            true
        }
    };
    if settled {
        // The postmortem's snapshots are taken before a failed run's worktree goes; its
        // analyses run once the slot is free.
        let postmortem = crate::postmortem::begin_after_end(&shared, run_id).await;
        let _ = shared.cleanup_worktree(run_id).await;
        let _ = shared.write_projections(run_id).await;
        shared.running().remove(&run_id);
        let _ = shared.settled.send(run_id);
        shared.wake.notify_one();
        if let Some(job) = postmortem {
            shared.postmortems.spawn(&shared, job);
        }
    }
}

impl Runtime {
    /// The records appended so far for a run, for embedders that want the raw log.
    pub async fn events(&self, run_id: RunId) -> Result<Vec<EventRecord>, RuntimeError> {
        self.shared.journal.read_run(run_id).await
    }
}
