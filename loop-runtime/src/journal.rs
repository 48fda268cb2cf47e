//! The journal: the only way the runtime changes a run.
//!
//! A command is decided against the run's folded state and appended with the version that
//! state was folded at. The state is kept folded in memory from the records the store returns,
//! and refolded from the log if another writer got there first.
//!
//! In a cluster, a driver's appends are fenced: each is decided only while the run's latest
//! claim is this node's, and the expected version makes that check and the append one atomic
//! step. A node that lost a run to another's claim cannot record anything more of it.
//!
//! The journal knows nothing above it. What must follow the log (the accounts, the event
//! streams) registers as an [`Observer`] when the runtime is built and is handed each record as
//! it is appended here or learned from another node. Every other use of the store goes through
//! [`Journal::read`], so no part of the runtime holds the store beside the journal.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use backon::BackoffBuilder as _;

use loop_core::{Command, DomainError, Event, EventRecord, RunId, RunState, Version, decide};
use loop_store::{EventStore, Reachability, StoreError};

use crate::clock::Clock;
use crate::error::RuntimeError;

/// How many times a command is re-decided after a version conflict.
const CONFLICT_RETRIES: usize = 5;

#[derive(Clone)]
pub(crate) struct Journal {
    store: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    states: Arc<Mutex<HashMap<RunId, RunState>>>,
    /// Handed every record appended or learned, in registration order.
    observers: Arc<[Arc<dyn Observer>]>,
    latency: Arc<AppendLatency>,
    health: Arc<StoreHealth>,
    /// This runtime's node id, in a cluster: what the driver's appends are fenced by.
    node_id: Option<Arc<str>>,
}

/// Where a record handed to an [`Observer`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// This runtime appended it, just now.
    Here,
    /// Another node appended it; this runtime's log follower learned of it (cluster only).
    Elsewhere,
}

/// A part of the runtime that follows the log as the journal writes and learns it. Called
/// with the journal's lock released, right after the append; it must not block.
pub(crate) trait Observer: Send + Sync {
    fn observe(&self, record: &EventRecord, origin: Origin);
}

/// What an append requires of the run's state beyond the command's own rules.
#[derive(Clone, Copy)]
pub(crate) enum Fence<'a> {
    None,
    /// The run's latest claim is this node's (or no node ever claimed it).
    ClaimedBy(&'a str),
    /// The run's latest claim is still the one the scheduler saw: a claim replaces it. With a
    /// version, the run is still at it: nothing was appended since the caller looked (it took
    /// the run's fence on the remote for the version its events get).
    StillClaimedBy(Option<&'a str>, Option<Version>),
    /// The run is still at this version (as above).
    At(Version),
}

impl Fence<'_> {
    fn check(self, run_id: RunId, state: &RunState) -> Result<(), RuntimeError> {
        let claimed_by = state.claimed_by();
        let holds = match self {
            Fence::None => true,
            Fence::ClaimedBy(node) => claimed_by.is_none_or(|by| by == node),
            Fence::StillClaimedBy(seen, at) => {
                claimed_by == seen && at.is_none_or(|at| state.version() == at)
            }
            Fence::At(version) => state.version() == version,
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

/// Runs `attempt` again while the log is unavailable (a full disk, a database restarting),
/// pausing 250 ms, doubling up to `max_pause`, for as long as it takes; `cancel` ends a pause
/// with [`RuntimeError::Shutdown`]. An attempt under way is never cut short: whether an append
/// landed must be known, not guessed.
pub(crate) async fn patiently<T, F, Fut>(
    cancel: &tokio_util::sync::CancellationToken,
    max_pause: std::time::Duration,
    mut attempt: F,
) -> Result<T, RuntimeError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RuntimeError>>,
{
    let mut pauses = backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_millis(250))
        .with_max_delay(max_pause)
        .without_max_times()
        .build();
    loop {
        match attempt().await {
            Err(RuntimeError::Store(error)) if error.is_unavailable() => {}
            other => return other,
        }
        let pause = pauses.next().unwrap_or(max_pause);
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = cancel.cancelled() => return Err(RuntimeError::Shutdown),
        }
    }
}

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
    /// A journal over `store` that hands each record to `observers`, in their order, and, when
    /// `node_id` is given (a cluster), fences the driver's appends by that node's claims.
    pub(crate) fn new(
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
        observers: Vec<Arc<dyn Observer>>,
        node_id: Option<&str>,
    ) -> Journal {
        Journal {
            store,
            clock,
            states: Arc::default(),
            observers: observers.into(),
            latency: Arc::default(),
            health: Arc::default(),
            node_id: node_id.map(Arc::from),
        }
    }

    /// Runs `work` on the store off the async threads: every read of the log that is not a
    /// run's state goes through here.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn EventStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, RuntimeError> {
        let store = Arc::clone(&self.store);
        blocking(move || work(store.as_ref())).await
    }

    /// Takes in a record another node appended (cluster mode only): a state folded before it
    /// is stale, and the observers follow it as they follow this runtime's own appends.
    pub(crate) fn learned(&self, record: &EventRecord) {
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
        for observer in self.observers.iter() {
            observer.observe(record, Origin::Elsewhere);
        }
    }

    pub(crate) fn health(&self) -> &Arc<StoreHealth> {
        &self.health
    }

    /// Why the log takes no writes now, if it does not: an append it refused, or a server
    /// that cannot be reached (the store reconnects by itself meanwhile; nothing is appended
    /// or claimed until it answers).
    pub(crate) fn trouble(&self) -> Option<StoreTrouble> {
        if let Some(trouble) = self.health.trouble() {
            return Some(trouble);
        }
        match self.store.reachability() {
            Reachability::Reachable => None,
            Reachability::Unreachable { since_ms, reason } => {
                Some(StoreTrouble { since_ms, reason })
            }
        }
    }

    /// This runtime's node id, in a cluster.
    pub(crate) fn node_id(&self) -> Option<&str> {
        self.node_id.as_deref()
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
        let fence = self.driver_fence();
        patiently(cancel, std::time::Duration::from_secs(5), || {
            self.execute_fenced(run_id, commands.clone(), fence)
        })
        .await
    }

    pub(crate) fn latency(&self) -> &Arc<AppendLatency> {
        &self.latency
    }

    /// Forgets the run's folded state: the next [`Journal::state`] reads the log.
    pub(crate) fn forget(&self, run_id: RunId) {
        self.lock().remove(&run_id);
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
        self.read(move |store| store.read_run(run_id)).await
    }

    /// Decides `commands` in order against the run's state and appends all their events at once.
    pub(crate) async fn execute(
        &self,
        run_id: RunId,
        commands: Vec<Command>,
    ) -> Result<Vec<EventRecord>, RuntimeError> {
        self.execute_fenced(run_id, commands, Fence::None).await
    }

    /// [`Journal::execute`] only while the run is at version `at` (its fence on the remote was
    /// taken for the version these events get): else [`RuntimeError::Fenced`], and nothing is
    /// appended.
    pub(crate) async fn execute_at(
        &self,
        run_id: RunId,
        commands: Vec<Command>,
        at: Version,
    ) -> Result<Vec<EventRecord>, RuntimeError> {
        self.execute_fenced(run_id, commands, Fence::At(at)).await
    }

    /// [`Journal::execute`] for the run's driver: refused once another node claimed the run.
    pub(crate) async fn execute_as_driver(
        &self,
        run_id: RunId,
        commands: Vec<Command>,
    ) -> Result<Vec<EventRecord>, RuntimeError> {
        self.execute_fenced(run_id, commands, self.driver_fence())
            .await
    }

    /// What a driver's appends require: this node's claim, in a cluster.
    fn driver_fence(&self) -> Fence<'_> {
        match &self.node_id {
            Some(id) => Fence::ClaimedBy(id),
            None => Fence::None,
        }
    }

    /// [`Journal::execute`] refused unless `fence` holds of the state it decides against (the
    /// check and the append are one step: the append expects the version checked).
    pub(crate) async fn execute_fenced(
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
                        log_event(record, open_step);
                        for observer in self.observers.iter() {
                            observer.observe(record, Origin::Here);
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
