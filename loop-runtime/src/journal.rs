//! The journal: the only way the runtime changes a run.
//!
//! A command is decided against the run's folded state and appended with the version that
//! state was folded at. The state is kept folded in memory from the records the store returns,
//! and refolded from the log if another writer got there first.
//!
//! In a cluster, a driver's appends are fenced: each is decided only while the run's latest
//! claim is this node's, and the expected version makes that check and the append one atomic
//! step. A node that lost a run to another's claim cannot record anything more of it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use loop_core::{Command, DomainError, Event, EventRecord, RunId, RunState, decide};
use loop_store::{EventStore, StoreError};
use tokio::sync::broadcast;

use crate::accounts::Accounts;
use crate::clock::Clock;
use crate::cluster::Node;
use crate::error::RuntimeError;

/// How many times a command is re-decided after a version conflict.
const CONFLICT_RETRIES: usize = 5;

#[derive(Clone)]
pub(crate) struct Journal {
    store: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    states: Arc<Mutex<HashMap<RunId, RunState>>>,
    /// Every record this runtime appends, as it is appended.
    appended: broadcast::Sender<EventRecord>,
    /// In a cluster: every record of the log as this runtime learns of it, its own appends and
    /// other nodes' (fed by [`crate::cluster`]), for event streams. Notifications keep to
    /// `appended`, so only the node that recorded an event notifies of it.
    log: Option<broadcast::Sender<EventRecord>>,
    latency: Arc<AppendLatency>,
    health: Arc<StoreHealth>,
    /// Catch-up reads of streams running at once (see [`crate::stream`]).
    stream_reads: Arc<tokio::sync::Semaphore>,
    /// This runtime's node, in a cluster: what the driver's appends are fenced by.
    node: Option<Arc<Node>>,
    /// The accounts of the runs, folded from what is appended and learned.
    accounts: Arc<Accounts>,
}

/// What an append requires of the run's state beyond the command's own rules.
#[derive(Clone, Copy)]
enum Fence<'a> {
    None,
    /// The run's latest claim is this node's (or no node ever claimed it).
    ClaimedBy(&'a str),
    /// The run's latest claim is still the one the scheduler saw: a claim replaces it.
    StillClaimedBy(Option<&'a str>),
}

impl Fence<'_> {
    fn check(self, run_id: RunId, state: &RunState) -> Result<(), RuntimeError> {
        let claimed_by = state.claimed_by();
        let holds = match self {
            Fence::None => true,
            Fence::ClaimedBy(node) => claimed_by.is_none_or(|by| by == node),
            Fence::StillClaimedBy(seen) => claimed_by == seen,
        };
        if holds {
            Ok(())
        } else {
            Err(RuntimeError::Fenced {
                run_id,
                node: claimed_by.unwrap_or_default().to_owned(),
            })
        }
    }
}

/// Catch-up reads of event streams at once: as many as the store has reading connections.
const STREAM_READS: usize = 8;

/// Whether the log takes writes: the first refusal since the last success, if any.
#[derive(Debug, Default)]
pub struct StoreHealth {
    trouble: Mutex<Option<StoreTrouble>>,
}

/// The log refuses writes, since when and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreTrouble {
    pub since_ms: i64,
    pub reason: String,
}

impl StoreHealth {
    /// The trouble now, `None` when the last append succeeded.
    pub fn trouble(&self) -> Option<StoreTrouble> {
        self.lock().clone()
    }

    fn ok(&self) {
        let mut trouble = self.lock();
        if let Some(old) = trouble.take() {
            tracing::info!(since_ms = old.since_ms, "the event log takes writes again");
        }
    }

    fn failed(&self, now_ms: i64, error: &StoreError) {
        let mut trouble = self.lock();
        if trouble.is_none() {
            tracing::error!(%error, "the event log refuses writes; runs wait until it takes them");
            *trouble = Some(StoreTrouble {
                since_ms: now_ms,
                reason: error.to_string(),
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<StoreTrouble>> {
        self.trouble.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The first pause before an append the log refused is offered again; it doubles up to
/// [`UNAVAILABLE_BACKOFF_MAX`].
const UNAVAILABLE_BACKOFF: std::time::Duration = std::time::Duration::from_millis(250);
const UNAVAILABLE_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// How long appends took, for the daemon's metrics.
#[derive(Debug, Default)]
pub struct AppendLatency {
    count: AtomicU64,
    total_micros: AtomicU64,
}

impl AppendLatency {
    /// (appends, total seconds) so far.
    pub fn snapshot(&self) -> (u64, f64) {
        (
            self.count.load(Ordering::Relaxed),
            self.total_micros.load(Ordering::Relaxed) as f64 / 1e6,
        )
    }
}

impl Journal {
    pub(crate) fn new(store: Arc<dyn EventStore>, clock: Arc<dyn Clock>) -> Journal {
        Journal {
            store,
            clock,
            states: Arc::default(),
            appended: broadcast::channel(4096).0,
            log: None,
            accounts: Arc::default(),
            latency: Arc::default(),
            health: Arc::default(),
            stream_reads: Arc::new(tokio::sync::Semaphore::new(STREAM_READS)),
            node: None,
        }
    }

    /// Fences the driver's appends by `node`'s claims.
    pub(crate) fn with_node(mut self, node: Option<Arc<Node>>) -> Journal {
        self.log = node.is_some().then(|| broadcast::channel(4096).0);
        self.node = node;
        self
    }

    /// What event streams follow live: every record of the log this runtime learns of (in a
    /// cluster, other nodes' too), else its own appends. Duplicates and gaps are the stream's
    /// to handle ([`crate::stream`]).
    pub(crate) fn follow_log(&self) -> broadcast::Receiver<EventRecord> {
        match &self.log {
            Some(log) => log.subscribe(),
            None => self.appended.subscribe(),
        }
    }

    pub(crate) fn accounts(&self) -> &Arc<Accounts> {
        &self.accounts
    }

    /// Hands a record another node appended to the event streams (cluster mode only).
    pub(crate) fn learned(&self, record: EventRecord) {
        self.accounts.apply(&record);
        // A state folded before another node's append is stale: fold it again when next asked.
        {
            let mut states = self.lock();
            if states
                .get(&record.run_id)
                .is_some_and(|state| state.version() < record.version)
            {
                states.remove(&record.run_id);
            }
        }
        if let Some(log) = &self.log {
            let _ = log.send(record);
        }
    }

    /// This runtime's node, in a cluster.
    pub(crate) fn node(&self) -> Option<&Arc<Node>> {
        self.node.as_ref()
    }

    /// Claims the run for this node, if the runtime is one, unless its latest claim is no
    /// longer `seen` (another node claimed it since the scheduler looked):
    /// [`RuntimeError::Fenced`] then. A run already this node's is left as it is.
    pub(crate) async fn claim(
        &self,
        run_id: RunId,
        seen: Option<&str>,
    ) -> Result<(), RuntimeError> {
        let Some(node) = self.node.clone() else {
            return Ok(());
        };
        if self.state(run_id).await?.claimed_by() == Some(node.id.as_str()) {
            return Ok(());
        }
        let claim = Command::Claim(loop_core::event::RunClaimed {
            node_id: node.id.clone(),
            lease_ms: node.lease.as_millis() as u64,
            took_over_from: seen.map(str::to_owned),
        });
        self.execute_fenced(run_id, vec![claim], Fence::StillClaimedBy(seen))
            .await
            .map(drop)
    }

    pub(crate) fn stream_reads(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.stream_reads
    }

    pub(crate) fn health(&self) -> &Arc<StoreHealth> {
        &self.health
    }

    /// [`Journal::execute`], offered again while the log is unavailable (a full disk, say)
    /// until it takes the events or `cancel` fires ([`RuntimeError::Shutdown`]). What the events
    /// record has already happened; they wait to be written, not to be decided again.
    pub(crate) async fn execute_patiently(
        &self,
        run_id: RunId,
        commands: Vec<Command>,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<Vec<EventRecord>, RuntimeError> {
        let mut pause = UNAVAILABLE_BACKOFF;
        let fence = match &self.node {
            Some(node) => Fence::ClaimedBy(&node.id),
            None => Fence::None,
        };
        loop {
            match self.execute_fenced(run_id, commands.clone(), fence).await {
                Err(RuntimeError::Store(error)) if error.is_unavailable() => {}
                other => return other,
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = cancel.cancelled() => return Err(RuntimeError::Shutdown),
            }
            pause = (pause * 2).min(UNAVAILABLE_BACKOFF_MAX);
        }
    }

    pub(crate) fn latency(&self) -> &Arc<AppendLatency> {
        &self.latency
    }

    /// Records as this runtime appends them (possibly out of `seq` order across runs).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<EventRecord> {
        self.appended.subscribe()
    }

    pub(crate) fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The run's state folded from the log (cached).
    pub(crate) async fn state(&self, run_id: RunId) -> Result<RunState, RuntimeError> {
        if let Some(state) = self.lock().get(&run_id) {
            return Ok(state.clone());
        }
        self.refold(run_id).await
    }

    async fn refold(&self, run_id: RunId) -> Result<RunState, RuntimeError> {
        let records = self.read_run(run_id).await?;
        let state =
            RunState::fold(&records).map_err(|error| RuntimeError::CorruptRun { run_id, error })?;
        self.lock().insert(run_id, state.clone());
        Ok(state)
    }

    pub(crate) async fn read_run(&self, run_id: RunId) -> Result<Vec<EventRecord>, RuntimeError> {
        let store = Arc::clone(&self.store);
        blocking(move || store.read_run(run_id)).await
    }

    /// Decides `commands` in order against the run's state and appends all their events at once.
    pub(crate) async fn execute(
        &self,
        run_id: RunId,
        commands: Vec<Command>,
    ) -> Result<Vec<EventRecord>, RuntimeError> {
        self.execute_fenced(run_id, commands, Fence::None).await
    }

    /// [`Journal::execute`] for the run's driver: refused once another node claimed the run.
    pub(crate) async fn execute_as_driver(
        &self,
        run_id: RunId,
        commands: Vec<Command>,
    ) -> Result<Vec<EventRecord>, RuntimeError> {
        let fence = match &self.node {
            Some(node) => Fence::ClaimedBy(&node.id),
            None => Fence::None,
        };
        self.execute_fenced(run_id, commands, fence).await
    }

    async fn execute_fenced(
        &self,
        run_id: RunId,
        commands: Vec<Command>,
        fence: Fence<'_>,
    ) -> Result<Vec<EventRecord>, RuntimeError> {
        for _ in 0..CONFLICT_RETRIES {
            let state = self.state(run_id).await?;
            fence.check(run_id, &state)?;
            let events = decide_all(run_id, &state, &commands)?;
            if events.is_empty() {
                return Ok(Vec::new());
            }
            let store = Arc::clone(&self.store);
            let expected = state.version();
            let ts_ms = self.clock.now_ms();
            let started = Instant::now();
            let appended = blocking(move || store.append(run_id, expected, ts_ms, events)).await;
            self.latency.count.fetch_add(1, Ordering::Relaxed);
            self.latency
                .total_micros
                .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            match &appended {
                Ok(_) => self.health.ok(),
                Err(RuntimeError::Store(error)) if error.is_unavailable() => {
                    self.health.failed(ts_ms, error);
                }
                Err(_) => {}
            }
            match appended {
                Ok(records) => {
                    let open_step = state.open_step().map(|open| open.step_id);
                    let mut state = state;
                    for record in &records {
                        state
                            .apply(record)
                            .map_err(|error| RuntimeError::CorruptRun { run_id, error })?;
                    }
                    self.lock().insert(run_id, state);
                    for record in &records {
                        self.accounts.apply(record);
                        log_event(record, open_step);
                        // Nobody listening is fine.
                        let _ = self.appended.send(record.clone());
                        if let Some(log) = &self.log {
                            let _ = log.send(record.clone());
                        }
                    }
                    return Ok(records);
                }
                Err(RuntimeError::Store(StoreError::Conflict { .. })) => {
                    self.lock().remove(&run_id);
                }
                Err(other) => {
                    self.lock().remove(&run_id);
                    return Err(other);
                }
            }
        }
        Err(RuntimeError::Busy { run_id })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, RunState>> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One line per appended event, with the run and the step it is about (the event's own step,
/// else the step open when it was appended): ends of runs at `info`, the rest at `debug`.
fn log_event(record: &EventRecord, open_step: Option<loop_core::StepId>) {
    let step_id = loop_core::projection::step_of(&record.event).or(open_step);
    let step_id = step_id.map(|id| id.to_string()).unwrap_or_default();
    let event_type = record.event.event_type().as_str();
    if record.event.is_terminal() {
        tracing::info!(
            run_id = %record.run_id,
            step_id,
            seq = record.seq.0,
            event_type,
            "run ended"
        );
    } else {
        tracing::debug!(run_id = %record.run_id, step_id, seq = record.seq.0, event_type, "event");
    }
}

/// Decides each command against the state the previous ones leave.
fn decide_all(
    run_id: RunId,
    state: &RunState,
    commands: &[Command],
) -> Result<Vec<Event>, DomainError> {
    let mut scratch = state.clone();
    let mut all = Vec::new();
    let mut version = scratch.version();
    for command in commands {
        let events = decide(&scratch, command.clone())?;
        for event in &events {
            version = version.next();
            let record = EventRecord {
                seq: loop_core::Seq(0),
                run_id,
                version,
                ts_ms: scratch.last_ts_ms(),
                schema: loop_core::event::SCHEMA,
                event: event.clone(),
            };
            scratch.apply(&record)?;
        }
        all.extend(events);
    }
    Ok(all)
}

/// Runs blocking store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, RuntimeError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| RuntimeError::Shutdown)?
        .map_err(RuntimeError::Store)
}
