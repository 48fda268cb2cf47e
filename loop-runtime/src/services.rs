//! [`Services`]: what every part of the runtime works with — the log, the clock, the data dir,
//! the live output channel, the process ledger, the agent adapters and worktree providers —
//! and the few effects more than one part needs (writing a run's projection files, removing
//! its worktree). It holds no scheduling state: the scheduler, the postmortems and the notifier
//! own theirs and reach the rest through here, so every edge points one way.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use loop_core::event::Provider;
use loop_core::projection::Export;
use loop_core::{Command, RunId, RunStatus};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::agent::Agent;
use crate::clock::Clock;
use crate::error::RuntimeError;
use crate::journal::Journal;
use crate::pauses::PauseRequests;
use crate::process::ledger::Ledger;
use crate::run_context::RunContext;
use crate::step_output::Chunk;
use crate::storage_full::StorageWaits;
use crate::worktree::{Workspace, WorktreeProvider};

pub(crate) struct Services {
    pub(crate) journal: Journal,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) data_dir: PathBuf,
    /// Every step's text output as it is written.
    pub(crate) live: broadcast::Sender<Chunk>,
    /// Where the children of this runtime are recorded while they live.
    pub(crate) ledger: Arc<Ledger>,
    /// The runs a full disk holds now.
    pub(crate) storage: StorageWaits,
    /// Runs asked to pause, as the log records it.
    pub(crate) pauses: Arc<PauseRequests>,
    agents: HashMap<String, Arc<dyn Agent>>,
    providers: HashMap<Provider, Arc<dyn WorktreeProvider>>,
    /// Cancelled when the runtime shuts down; every task's token is a child of it.
    pub(crate) shutdown: CancellationToken,
    /// Per run, held while its projection files are folded and written, so an older fold never
    /// overwrites a newer one; one run's files waiting for space keep no other run's waiting.
    projections: std::sync::Mutex<HashMap<RunId, Arc<tokio::sync::Mutex<()>>>>,
}

/// Live output chunks kept for subscribers that are behind, across all runs. A chunk is the
/// lines of one read of a pipe (up to 64 KiB, [`crate::step_output`]), so this bounds what a
/// slow subscriber can hold in memory to about 16 MiB; one further behind reads the `.log`
/// instead ([`crate::output`]).
const LIVE_CHUNKS: usize = 256;

impl Services {
    pub(crate) fn new(
        journal: Journal,
        clock: Arc<dyn Clock>,
        data_dir: PathBuf,
        agents: HashMap<String, Arc<dyn Agent>>,
        providers: HashMap<Provider, Arc<dyn WorktreeProvider>>,
        pauses: Arc<PauseRequests>,
    ) -> Services {
        Services {
            journal,
            clock,
            ledger: Arc::new(Ledger::new(&data_dir)),
            storage: StorageWaits::default(),
            data_dir,
            live: broadcast::channel(LIVE_CHUNKS).0,
            pauses,
            agents,
            providers,
            shutdown: CancellationToken::new(),
            projections: std::sync::Mutex::default(),
        }
    }

    pub(crate) fn agent(&self, name: &str) -> Option<Arc<dyn Agent>> {
        self.agents.get(name).cloned()
    }

    /// The adapters' names, sorted (for messages).
    pub(crate) fn agent_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.agents.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    pub(crate) fn worktree_provider(&self, name: &Provider) -> Option<Arc<dyn WorktreeProvider>> {
        self.providers.get(name).cloned()
    }

    /// `wanted`, or `wanted-2`, `wanted-3`, … whichever no other run is called (as branches
    /// are): a person names a run by its name, so two runs never share one they were given.
    ///
    /// The taken names of one spec are usually a block (`feature`, `feature-2` … `feature-k`):
    /// the look-ups gallop past the block and bisect back to its end, O(log k) of them rather
    /// than k, which made a thousand runs of one spec quadratic to submit. With gaps in the
    /// block, the name found is free but not always the lowest free one.
    pub(crate) async fn free_name(
        &self,
        wanted: &str,
        other_than: Option<RunId>,
    ) -> Result<String, RuntimeError> {
        let candidate = |n: u64| match n {
            1 => wanted.to_owned(),
            n => format!("{wanted}-{n}"),
        };
        if !self.name_taken(&candidate(1), other_than).await? {
            return Ok(candidate(1));
        }
        // `taken` is a taken suffix, `free` a free one above it.
        let (mut taken, mut free) = (1u64, 2u64);
        while self.name_taken(&candidate(free), other_than).await? {
            taken = free;
            free = free.saturating_mul(2);
        }
        while free - taken > 1 {
            let middle = taken + (free - taken) / 2;
            if self.name_taken(&candidate(middle), other_than).await? {
                taken = middle;
            } else {
                free = middle;
            }
        }
        Ok(candidate(free))
    }

    /// Whether a run other than `other_than` is called `name`, has been, or is meant by it (a
    /// name that reads as another run's id prefix would not find its own run).
    pub(crate) async fn name_taken(
        &self,
        name: &str,
        other_than: Option<RunId>,
    ) -> Result<bool, RuntimeError> {
        let reference = name.to_owned();
        let found = self
            .journal
            .read(move |store| store.find_runs(&reference, 64))
            .await?;
        Ok(found.iter().any(|view| Some(view.id) != other_than))
    }

    /// The run's context as its log says now.
    pub(crate) async fn run_context(&self, run_id: RunId) -> Result<RunContext, RuntimeError> {
        let state = self.journal.state(run_id).await?;
        RunContext::of(&state, &self.data_dir).ok_or(RuntimeError::UnknownRun(run_id))
    }

    /// Removes a FAILED or CANCELED run's worktree when `worktree_cleanup` says so, and records
    /// it. A COMPLETED run keeps its worktree for review.
    pub(crate) async fn cleanup_worktree(&self, run_id: RunId) -> Result<(), RuntimeError> {
        let state = self.journal.state(run_id).await?;
        let Some(context) = RunContext::of(&state, &self.data_dir) else {
            return Ok(());
        };
        let ended_badly = matches!(
            state.status(),
            Some(RunStatus::Failed | RunStatus::Canceled)
        );
        if ended_badly && context.config.worktree_cleanup {
            self.remove_worktree_of(run_id).await?;
        }
        Ok(())
    }

    /// Records `command`, a pause or a cancel (`what`) taken through this node, after taking
    /// the run's fence on its remote in a cluster ([`crate::fencing::release`]), so that the
    /// node driving the run can land nothing more there once it is in the log.
    pub(crate) async fn release(
        &self,
        run_id: RunId,
        command: Command,
        what: &str,
    ) -> Result<(), RuntimeError> {
        crate::fencing::release(&self.journal, &self.data_dir, run_id, command, what).await
    }

    /// Removes the run's worktree on this machine, through its provider, and records
    /// `WORKTREE_REMOVED`; the path removed, `None` when the run has none. For a run by URL
    /// that is this node's own worktree of it, never the path the log recorded when another
    /// node made the worktree first: that one is the other node's.
    pub(crate) async fn remove_worktree_of(
        &self,
        run_id: RunId,
    ) -> Result<Option<String>, RuntimeError> {
        let state = self.journal.state(run_id).await?;
        let Some(context) = RunContext::of(&state, &self.data_dir) else {
            return Ok(None);
        };
        // The context's worktree is this node's (see `RunContext::of`).
        let Some(worktree) = context.worktree.clone() else {
            return Ok(None);
        };
        if !worktree.provider.has_worktree() {
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
        let workspace = Workspace {
            provider: worktree.provider.clone(),
            path: PathBuf::from(&worktree.path),
            base_branch: worktree.base_branch.clone(),
            run_branch: worktree.run_branch.clone(),
            reused: worktree.reused,
        };
        provider
            .remove(&workspace, &context.config)
            .await
            .map_err(|error| failed(error.to_string()))?;
        let removed = loop_core::event::WorktreeRemoved {
            path: worktree.path.clone(),
        };
        self.journal
            .execute(run_id, vec![Command::RemoveWorktree(removed)])
            .await?;
        Ok(Some(worktree.path))
    }

    /// Writes every projection file of a run from its log (`report.tsv`, `summary.json`,
    /// `run.log`, `events.jsonl`, `experiments.tsv`). A full disk holds the run until each is
    /// written (`storage_full` in its view, naming the file: `specs/daemon.md`, Faults), or
    /// until the runtime stops.
    pub(crate) async fn write_projections(&self, run_id: RunId) -> Result<(), RuntimeError> {
        self.write_projections_until(run_id, &self.shutdown).await
    }

    /// As [`Services::write_projections`], except that a full disk does not keep the caller (a
    /// person's cancel): the files are then written by a task of their own once there is
    /// space, the run held in `storage_full` meanwhile.
    pub(crate) async fn write_projections_soon(
        self: &Arc<Self>,
        run_id: RunId,
    ) -> Result<(), RuntimeError> {
        let once = CancellationToken::new();
        once.cancel();
        match self.write_projections_until(run_id, &once).await {
            Err(RuntimeError::Io { source, .. }) if crate::storage_full::is_full(&source) => {
                let services = Arc::clone(self);
                tokio::spawn(async move {
                    if let Err(error) = services.write_projections(run_id).await {
                        tracing::warn!(%run_id, %error, "cannot write the run's files");
                    }
                });
                Ok(())
            }
            other => other,
        }
    }

    /// Writes the projection files, waiting out a full disk until `cancel`.
    async fn write_projections_until(
        &self,
        run_id: RunId,
        cancel: &CancellationToken,
    ) -> Result<(), RuntimeError> {
        let lock = {
            let mut locks = self.projections.lock().unwrap_or_else(|e| e.into_inner());
            // Locks no writer holds or waits for go.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            Arc::clone(locks.entry(run_id).or_default())
        };
        let _writing = lock.lock().await;
        let records = self.journal.read_run(run_id).await?;
        let Some(export) = Export::of(&records) else {
            return Ok(());
        };
        let context = self.run_context(run_id).await?;
        let now_ms = || self.clock.now_ms();
        let dir = context.files.dir().display().to_string();
        let created = self
            .storage
            .patiently(run_id, &dir, now_ms, cancel, || context.files.create())
            .await;
        // A run directory that cannot be made for another reason (its workspace gone) has no
        // files to write.
        if let Err(error) = created {
            if crate::storage_full::is_full(&error) {
                return Err(RuntimeError::Io {
                    what: dir,
                    source: error,
                });
            }
            return Ok(());
        }
        for (name, text) in export.files() {
            if name == "summary.json" && !context.config.summary_json {
                continue;
            }
            self.storage
                .patiently(run_id, name, now_ms, cancel, || {
                    context.files.write_projection(name, text)
                })
                .await
                .map_err(|source| RuntimeError::Io {
                    what: name.to_owned(),
                    source,
                })?;
        }
        Ok(())
    }
}
