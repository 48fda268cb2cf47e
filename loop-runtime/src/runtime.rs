//! [`Runtime`]: the engine an embedder holds — submit runs, control them, watch them, review
//! them. This file is the whole public surface; each method hands the work to the part that
//! owns it: the journal (decide and append), the [`Scheduler`], the subsystems beside it (the
//! accounts, the event streams, the postmortems, cluster membership), the review actions. Control commands stop the run's driver first, then record what happened, so the log
//! never shows a step finishing twice.

mod builder;
mod review;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loop_api::insight::ExperimentReport;
use loop_core::config::{Config, RunConfig};
use loop_core::layout::step_log_name;
use loop_core::projection::{ExperimentTable, RunView, StepView};
use loop_core::{Command, EventRecord, RunId, Seq, StepId};
use loop_store::RunQuery;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::accounts::Accounts;
use crate::cluster::Membership;
use crate::error::RuntimeError;
use crate::journal::{AppendLatency, StoreTrouble};
use crate::notify::Notifier;
use crate::output::OutputStream;
use crate::postmortem::Postmortems;
use crate::request::{self, RunRequest};
use crate::scheduler::Scheduler;
use crate::services::Services;
use crate::step_output::Chunk;
use crate::stream::{EventStream, Streams};

pub use builder::RuntimeBuilder;

/// The most runs an ambiguous reference lists.
const MAX_CANDIDATES: usize = 20;
/// How often a reader waiting for an ended run's files looks whether a full disk holds them.
const STORAGE_CHECK: Duration = Duration::from_millis(500);

/// The loop engine. Cheap to clone; every clone drives the same runs.
#[derive(Clone)]
pub struct Runtime {
    services: Arc<Services>,
    scheduler: Arc<Scheduler>,
    postmortems: Arc<Postmortems>,
    accounts: Arc<Accounts>,
    streams: Arc<Streams>,
    /// In a cluster: this node's membership.
    membership: Option<Arc<Membership>>,
    notifier: Arc<Notifier>,
    scheduler_task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("data_dir", &self.services.data_dir)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::new()
    }

    /// Resolves the request's configuration and records a new PENDING run.
    pub async fn submit(&self, mut request: RunRequest) -> Result<RunView, RuntimeError> {
        let url = request.repo_url.take().filter(|url| !url.trim().is_empty());
        // What reaches git is checked before git sees it.
        crate::repos::check_branches(&request.config).await?;
        let mut checked_out = None;
        if let Some(url) = &url {
            crate::repos::check_url(url)?;
            // The run is checked against this node's checkout of the repository at its base
            // branch, and records the URL: what every node can reach.
            let asked = Config::resolve([&request.config]).typed().base_branch;
            let (dir, base) =
                crate::repos::checkout(&self.services.data_dir, url, asked.as_deref())
                    .await
                    .map_err(|error| RuntimeError::Missing {
                        what: "repo_url".to_owned(),
                        reason: error.to_string(),
                    })?;
            request.workspace_root = dir;
            checked_out = Some(base);
        }
        let mut created = request::resolve(&request, checked_out)?;
        // The configuration files' values too.
        crate::repos::check_branches(&created.config).await?;
        if let Some(url) = url {
            created.workspace_root = url;
        }
        // A name made from the spec gets a suffix when taken; a name the person gave stands
        // unless another run has had it: a name means one run for good.
        if created.name_source != loop_core::event::NameSource::Explicit {
            created.name = self.services.free_name(&created.name, None).await?;
        } else if self.services.name_taken(&created.name, None).await? {
            return Err(RuntimeError::InvalidRequest {
                what: "name".to_owned(),
                reason: format!(
                    "another run is (or was) called {:?}, or starts with it: a name means one \
                     run for good; choose another",
                    created.name
                ),
            });
        }
        let config = RunConfig::from_frozen(&created.config);
        let agent = config.agent.as_str();
        if self.services.agent(agent).is_none() {
            return Err(RuntimeError::InvalidRequest {
                what: "agent".to_owned(),
                reason: format!(
                    "no agent adapter named {agent:?} (known: {})",
                    self.services.agent_names().join(", ")
                ),
            });
        }
        if let Err(reason) = self.accounts.check(&config) {
            let what = "account_pool".to_owned();
            return Err(RuntimeError::InvalidRequest { what, reason });
        }
        let run_id = RunId::from_uuid(uuid::Uuid::now_v7());
        self.scheduler.submitted(run_id);
        self.services
            .journal
            .execute(run_id, vec![Command::Create(created)])
            .await?;
        self.scheduler.wake();
        self.get(run_id).await
    }

    /// The run as the API shows it, with why it waits when it does.
    pub async fn get(&self, run_id: RunId) -> Result<RunView, RuntimeError> {
        let mut view = (self.services.journal)
            .read(move |store| store.run_view(run_id))
            .await?
            .ok_or(RuntimeError::UnknownRun(run_id))?;
        self.scheduler.explain_wait(&mut view);
        self.localize_worktree(&mut view).await;
        Ok(view)
    }

    /// A run by URL: the worktree's path on this node, when it has one (the log keeps the path
    /// of the node that made the worktree first).
    async fn localize_worktree(&self, view: &mut RunView) {
        if crate::repos::url_of(&view.workspace_root).is_none()
            || view.worktree.run_branch.is_none()
        {
            return;
        }
        if let Ok(run) = self.services.run_context(view.id).await
            && let Some(worktree) = &run.worktree
            && std::path::Path::new(&worktree.path).is_dir()
        {
            view.worktree.worktree_path = Some(worktree.path.clone());
        }
    }

    /// This runtime's node, when it is one of a cluster.
    pub fn node(&self) -> Option<&crate::Node> {
        self.membership.as_deref().map(Membership::node)
    }

    /// Every agent account of the runs in the log: its state (limit, spend), its runs, and the
    /// run probing it since its reset, if any.
    pub fn accounts(&self) -> Vec<AccountSummary> {
        self.accounts.snapshot()
    }

    /// When each run that has not ended is expected to finish, and what binds it first (see
    /// [`loop_core::account::forecasts`]), now by the runtime's clock.
    pub fn forecasts(&self) -> Vec<loop_core::account::RunForecast> {
        self.accounts.forecasts(self.services.clock.now_ms())
    }

    /// How many runs this runtime drives now.
    pub fn running_count(&self) -> usize {
        self.scheduler.running_count()
    }

    /// The most runs this runtime drives at once.
    pub fn capacity(&self) -> usize {
        self.scheduler.capacity()
    }

    /// Every node that beat on the log, the most recently heard first.
    pub async fn nodes(&self) -> Result<Vec<loop_store::NodeSeen>, RuntimeError> {
        self.services.journal.read(|store| store.nodes()).await
    }

    pub async fn list(&self, query: RunQuery) -> Result<Vec<RunView>, RuntimeError> {
        let mut views = (self.services.journal)
            .read(move |store| store.list_runs(&query))
            .await?;
        for view in &mut views {
            self.scheduler.explain_wait(view);
        }
        Ok(views)
    }

    /// The one run a person's reference means: its id, a unique id prefix, its name, or its
    /// branch (newest first when a name or branch was used again).
    pub async fn find(&self, reference: &str) -> Result<RunView, RuntimeError> {
        let wanted = reference.to_owned();
        let mut found = (self.services.journal)
            .read(move |store| store.find_runs(&wanted, MAX_CANDIDATES))
            .await?;
        match found.len() {
            0 => Err(RuntimeError::NoMatch {
                reference: reference.to_owned(),
            }),
            1 => {
                let mut view = found.remove(0);
                self.scheduler.explain_wait(&mut view);
                Ok(view)
            }
            _ => Err(RuntimeError::Ambiguous {
                reference: reference.to_owned(),
                runs: found,
            }),
        }
    }

    pub async fn steps(&self, run_id: RunId) -> Result<Vec<StepView>, RuntimeError> {
        (self.services.journal)
            .read(move |store| store.steps(run_id))
            .await
    }

    /// The records appended so far for a run, for embedders that want the raw log.
    pub async fn events(&self, run_id: RunId) -> Result<Vec<EventRecord>, RuntimeError> {
        self.services.journal.read_run(run_id).await
    }

    /// An experiment's table and where it stands, folded from its events; `Missing` when the
    /// run is not an experiment.
    pub async fn experiment(&self, run_id: RunId) -> Result<ExperimentReport, RuntimeError> {
        let records = self.services.journal.read_run(run_id).await?;
        let table = ExperimentTable::fold(&records).ok_or_else(|| RuntimeError::Missing {
            what: format!("the experiment of run {run_id}"),
            reason: "no such run in experiment mode".to_owned(),
        })?;
        let summary = table.brief();
        Ok(ExperimentReport {
            run_id,
            table,
            summary,
        })
    }

    /// Every event after `after`, of one run or of all, then live.
    pub fn subscribe(&self, run: Option<RunId>, after: Seq) -> EventStream {
        self.streams.open(&self.services.journal, run, after)
    }

    /// How long appends to the log have taken.
    pub fn append_latency(&self) -> Arc<AppendLatency> {
        Arc::clone(self.services.journal.latency())
    }

    /// Whether the log takes writes: `None` when it does, else since when and why not.
    pub fn store_trouble(&self) -> Option<StoreTrouble> {
        self.services.journal.trouble()
    }

    /// The run's directory (its primary copy, per `artifact_mode`). For a run that has ended,
    /// once its files are written: a client that saw the end and asks for `summary.json` finds
    /// it.
    pub async fn run_dir(&self, run_id: RunId) -> Result<PathBuf, RuntimeError> {
        let run = self.services.run_context(run_id).await?;
        if self.scheduler.is_running(run_id) && self.get(run_id).await?.status.is_terminal() {
            self.until_settled(run_id).await;
        }
        Ok(run.files.dir().to_owned())
    }

    /// Until the driver of a run that has ended has written its files and let go of it.
    /// A run whose files wait for space on a full disk (`storage_full`) is not waited for: the
    /// reader gets what is there.
    async fn until_settled(&self, run_id: RunId) {
        let mut settled = self.scheduler.settled();
        while self.scheduler.is_running(run_id) && self.services.storage.held(run_id).is_none() {
            let next = tokio::time::timeout(STORAGE_CHECK, settled.recv()).await;
            match next {
                Ok(Ok(id)) if id == run_id => break,
                Ok(Ok(_) | Err(broadcast::error::RecvError::Lagged(_))) | Err(_) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => break,
            }
        }
    }

    /// Live text output of every step, as it is written (see [`Chunk`]).
    pub fn output(&self) -> broadcast::Receiver<Chunk> {
        self.services.live.subscribe()
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
        let live = self.services.live.subscribe();
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
        let run = self.services.run_context(run_id).await?;
        let path = run
            .files
            .path(&step_log_name(step.iteration, step.phase, step.attempt));
        let finished = step.status.is_final();
        Ok(OutputStream::new(
            run_id, step_id, path, offset, live, events, finished,
        ))
    }

    /// In a cluster: the address of the node that drives or last drove `run_id`, when the
    /// step's output is not on this machine (a run by URL works in that node's data dir) and
    /// that node is alive to serve it. `None` when the output is here, or nobody else can give
    /// it.
    pub async fn output_elsewhere(
        &self,
        run_id: RunId,
        step_id: StepId,
    ) -> Result<Option<String>, RuntimeError> {
        if self.node().is_none() {
            return Ok(None);
        }
        let Some(step) = self
            .steps(run_id)
            .await?
            .into_iter()
            .find(|step| step.id == step_id)
        else {
            return Ok(None);
        };
        let run = self.services.run_context(run_id).await?;
        let path = run
            .files
            .path(&step_log_name(step.iteration, step.phase, step.attempt));
        if path.is_file() {
            return Ok(None);
        }
        self.last_driver_address(run_id).await
    }

    /// In a cluster: the address of the node that drives or last drove `run_id`, when the run's
    /// directory is not on this machine and that node is alive to serve its files.
    pub async fn files_elsewhere(&self, run_id: RunId) -> Result<Option<String>, RuntimeError> {
        if self.node().is_none() {
            return Ok(None);
        }
        let run = self.services.run_context(run_id).await?;
        if run.files.dir().is_dir() {
            return Ok(None);
        }
        self.last_driver_address(run_id).await
    }

    /// The address of the live node, other than this one, that claimed `run_id` last (a claim
    /// ends with the run, but its files stay with that node).
    async fn last_driver_address(&self, run_id: RunId) -> Result<Option<String>, RuntimeError> {
        let Some(me) = self.node() else {
            return Ok(None);
        };
        let last = self
            .events(run_id)
            .await?
            .into_iter()
            .rev()
            .find_map(|record| match record.event {
                loop_core::Event::RunClaimed(claim) => Some(claim.node_id),
                _ => None,
            });
        let Some(owner) = last.filter(|owner| *owner != me.id) else {
            return Ok(None);
        };
        Ok(self
            .nodes()
            .await?
            .into_iter()
            // Only a member: a row that does not prove the token is sent nothing, and never
            // the token a proxied request carries.
            .find(|node| node.beat.node_id == owner && node.holds_lease() && me.trusts(node))
            .map(|node| node.beat.address))
    }

    /// Pauses the run once its current step ends: the agent's call in flight goes on, and the
    /// run's driver records the pause before it starts another step (at once when it is
    /// waiting with no call in flight: a usage limit, a backoff). Asking again changes nothing.
    pub async fn request_pause(&self, run_id: RunId) -> Result<RunView, RuntimeError> {
        self.services
            .journal
            .execute(run_id, vec![Command::RequestPause])
            .await?;
        // A run no driver holds (between claims, or its driver just ended) is woken, so that a
        // driver starts and pauses it.
        if !self.scheduler.is_running(run_id) {
            self.scheduler.wake();
        }
        self.get(run_id).await
    }

    /// Stops the agent at once; the open step is recorded as CANCELED.
    pub async fn pause(&self, run_id: RunId) -> Result<RunView, RuntimeError> {
        let pause = |at_ms| Command::Pause {
            reason: None,
            at_ms,
        };
        self.check(run_id, pause(0)).await?;
        let held = self.scheduler.stop(run_id).await;
        let at_ms = self.services.clock.now_ms();
        self.services.release(run_id, pause(at_ms), "pause").await?;
        drop(held);
        self.get(run_id).await
    }

    /// Continues a paused run from where it stopped.
    pub async fn resume(&self, run_id: RunId) -> Result<RunView, RuntimeError> {
        self.services
            .journal
            .execute(run_id, vec![Command::Resume])
            .await?;
        self.scheduler.wake();
        self.get(run_id).await
    }

    /// Ends the run for good; the open step is recorded as CANCELED.
    pub async fn cancel(&self, run_id: RunId) -> Result<RunView, RuntimeError> {
        let cancel = |at_ms| Command::Cancel {
            reason: None,
            at_ms,
        };
        self.check(run_id, cancel(0)).await?;
        let held = self.scheduler.stop(run_id).await;
        let at_ms = self.services.clock.now_ms();
        self.services
            .release(run_id, cancel(at_ms), "cancel")
            .await?;
        drop(held);
        let postmortem = self.postmortems.begin_after_end(run_id).await;
        self.services.write_projections_soon(run_id).await?;
        if let Some(job) = postmortem {
            self.postmortems.spawn(job);
        }
        self.get(run_id).await
    }

    /// Sends a FAILED or CANCELED run back to PENDING; its limits count afresh.
    pub async fn retry(&self, run_id: RunId) -> Result<RunView, RuntimeError> {
        self.postmortems.yield_to_retry(run_id).await;
        self.services
            .journal
            .execute(run_id, vec![Command::Retry])
            .await?;
        self.scheduler.wake();
        self.get(run_id).await
    }

    /// Waits until the run is COMPLETED, FAILED or CANCELED and its files are written, and
    /// returns it.
    pub async fn wait(&self, run_id: RunId) -> Result<RunView, RuntimeError> {
        loop {
            let view = self.get(run_id).await?;
            if view.status.is_terminal() {
                // The driver may still be writing the projection files.
                self.until_settled(run_id).await;
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
        self.services.shutdown.cancel();
        self.scheduler.wake();
        let task = self
            .scheduler_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
        for run_id in self.scheduler.stop_all().await {
            let at_ms = self.services.clock.now_ms();
            let _ = self
                .services
                .journal
                .execute_as_driver(run_id, vec![Command::Recover { at_ms }])
                .await;
        }
        self.postmortems.stop_all().await;
        self.notifier.stop().await;
    }

    /// Refuses early, before any agent is stopped, a command the run's state forbids.
    async fn check(&self, run_id: RunId, command: Command) -> Result<(), RuntimeError> {
        let state = self.services.journal.state(run_id).await?;
        if state.status().is_none() {
            return Err(RuntimeError::UnknownRun(run_id));
        }
        loop_core::decide(&state, command)?;
        Ok(())
    }

    // After a run: the postmortem, figures, review.
}

/// One agent account, as [`Runtime::accounts`] gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountSummary {
    pub account: String,
    pub state: loop_core::account::AccountState,
    pub runs: Vec<RunId>,
    pub probe: Option<RunId>,
    /// The most calls it admits at once (`account_concurrency`), if its runs set a cap.
    pub concurrency: Option<u32>,
    /// Its calls in flight, as the log shows them.
    pub calls_in_flight: u32,
    /// This runtime's runs waiting for a turn of its calls, longest-waiting first.
    pub turn_queue: Vec<RunId>,
    /// Its agent, when the daemon declares the account (`loopd --accounts`).
    pub declared_agent: Option<String>,
}
