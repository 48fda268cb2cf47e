//! The single writer: every append goes through one thread that commits them in groups.
//!
//! Appenders queue requests; the writer takes whatever is queued (up to [`MAX_BATCH`]), writes
//! each request inside its own savepoint (so a conflict or a bad request affects only itself),
//! and commits the whole group with one fsync (`synchronous=FULL`). Only then does it answer the
//! appenders and publish the records to subscribers. Durability is that of a lone commit; the
//! cost of the fsync is shared.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};

use loop_core::projection::{RunView, StepView, step_of};
use loop_core::{Event, EventRecord, EventType, RunId, Seq, StepId, Version, event::SCHEMA};
use rusqlite::{Connection, TransactionBehavior};

use crate::error::StoreError;
use crate::sqlite::rows;
use crate::sqlite::schema::error_at;
use crate::store::RebuildStats;
use crate::subscription::Subscribers;

/// The most requests committed in one transaction.
const MAX_BATCH: usize = 512;
/// Run views kept in memory between batches; past this the cache starts afresh.
const RUN_CACHE_LIMIT: usize = 4096;

pub(crate) type Reply<T> = SyncSender<Result<T, StoreError>>;

pub(crate) enum Request {
    Append {
        run_id: RunId,
        expected: Version,
        ts_ms: i64,
        events: Vec<Event>,
        reply: Reply<Vec<EventRecord>>,
    },
    Rebuild {
        reply: Reply<RebuildStats>,
    },
}

struct Append {
    run_id: RunId,
    expected: Version,
    ts_ms: i64,
    events: Vec<Event>,
    reply: Reply<Vec<EventRecord>>,
}

/// What one append changes, kept apart until its savepoint is released.
struct Staged {
    records: Vec<EventRecord>,
    view: RunView,
    /// The step rows it wrote, as written.
    steps: Vec<(StepView, Seq)>,
}

type StepCache = HashMap<StepId, (StepView, Seq)>;

pub(crate) struct Writer {
    conn: Connection,
    path: PathBuf,
    last_seq: u64,
    /// Committed run views (and so versions), to spare a read and a parse per append.
    runs: HashMap<RunId, RunView>,
    /// Committed rows of steps still open: their next event needs them.
    open_steps: StepCache,
    subscribers: Arc<Subscribers>,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        path: PathBuf,
        subscribers: Arc<Subscribers>,
    ) -> Result<Writer, StoreError> {
        let last_seq = read_last_seq(&conn, &path)?;
        Ok(Writer {
            conn,
            path,
            last_seq,
            runs: HashMap::new(),
            open_steps: HashMap::new(),
            subscribers,
        })
    }

    /// Serves requests until every sender is gone.
    pub(crate) fn run(mut self, requests: Receiver<Request>) {
        let mut pending: Option<Request> = None;
        loop {
            let first = match pending.take() {
                Some(request) => request,
                None => match requests.recv() {
                    Ok(request) => request,
                    Err(_) => return,
                },
            };
            let mut batch = match first {
                Request::Rebuild { reply } => {
                    let _ = reply.send(self.rebuild());
                    continue;
                }
                Request::Append {
                    run_id,
                    expected,
                    ts_ms,
                    events,
                    reply,
                } => vec![Append {
                    run_id,
                    expected,
                    ts_ms,
                    events,
                    reply,
                }],
            };
            while batch.len() < MAX_BATCH {
                match requests.try_recv() {
                    Ok(Request::Append {
                        run_id,
                        expected,
                        ts_ms,
                        events,
                        reply,
                    }) => batch.push(Append {
                        run_id,
                        expected,
                        ts_ms,
                        events,
                        reply,
                    }),
                    Ok(rebuild @ Request::Rebuild { .. }) => {
                        pending = Some(rebuild);
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
        }
    }

    fn commit_batch(&mut self, batch: Vec<Append>) {
        let mut outcomes: Vec<Result<Staged, StoreError>> = Vec::with_capacity(batch.len());
        let committed = self.write_batch(&batch, &mut outcomes);

        if let Err(error) = committed {
            // Nothing of the batch is durable: every appender that was about to succeed hears
            // why, and the in-memory state is re-read from the database.
            let reason = error.to_string();
            self.runs.clear();
            self.open_steps.clear();
            if let Ok(seq) = read_last_seq(&self.conn, &self.path) {
                self.last_seq = seq;
            }
            for (append, outcome) in batch.into_iter().zip(
                outcomes
                    .into_iter()
                    .map(Some)
                    .chain(std::iter::repeat_with(|| None)),
            ) {
                let answer = match outcome {
                    Some(Err(refused)) => Err(refused),
                    _ => Err(StoreError::Write {
                        path: self.path.clone(),
                        reason: reason.clone(),
                    }),
                };
                let _ = append.reply.send(answer);
            }
            return;
        }

        let mut published = Vec::new();
        for (append, outcome) in batch.into_iter().zip(outcomes) {
            let answer = outcome.map(|staged| {
                if self.runs.len() >= RUN_CACHE_LIMIT {
                    self.runs.clear();
                }
                if self.open_steps.len() >= RUN_CACHE_LIMIT {
                    self.open_steps.clear();
                }
                self.runs.insert(append.run_id, staged.view);
                for (step, started_seq) in staged.steps {
                    if step.status.is_final() {
                        self.open_steps.remove(&step.id);
                    } else {
                        self.open_steps.insert(step.id, (step, started_seq));
                    }
                }
                published.extend_from_slice(&staged.records);
                staged.records
            });
            let _ = append.reply.send(answer);
        }
        if !published.is_empty() {
            self.subscribers.publish(published.into());
        }
    }

    /// Writes every append of the batch in one transaction. Each outcome is pushed in order;
    /// an `Err` return means the transaction as a whole did not commit.
    fn write_batch(
        &mut self,
        batch: &[Append],
        outcomes: &mut Vec<Result<Staged, StoreError>>,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let mut tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(error_at(&path, "begin a write"))?;
        // Another store on the same file (`loopctl exec` or `replay` beside `loopd`) may have
        // written since our last commit; then our next seq and cached run views are stale.
        // Holding the write lock, the log's last seq is the truth.
        let stored_last_seq = read_last_seq(&tx, &path)?;
        if stored_last_seq != self.last_seq {
            self.runs.clear();
            self.open_steps.clear();
            self.last_seq = stored_last_seq;
        }
        let mut next_seq = self.last_seq + 1;
        if let [append] = batch {
            // A lone append needs no savepoint: if it is refused, the whole transaction is.
            let base = self.runs.get(&append.run_id).cloned();
            match stage(
                &tx,
                &path,
                append,
                base,
                &|id| self.open_steps.get(&id).cloned(),
                next_seq,
            ) {
                Ok(staged) => {
                    next_seq += staged.records.len() as u64;
                    outcomes.push(Ok(staged));
                }
                Err(refused) => {
                    outcomes.push(Err(refused));
                    tx.rollback().map_err(error_at(&path, "roll back"))?;
                    return Ok(());
                }
            }
        } else {
            let mut staged_views: HashMap<RunId, RunView> = HashMap::new();
            let mut staged_steps: StepCache = HashMap::new();
            for append in batch {
                let savepoint = tx
                    .savepoint()
                    .map_err(error_at(&path, "open a savepoint"))?;
                let base = staged_views
                    .get(&append.run_id)
                    .or_else(|| self.runs.get(&append.run_id))
                    .cloned();
                let cached = |id| {
                    staged_steps
                        .get(&id)
                        .or_else(|| self.open_steps.get(&id))
                        .cloned()
                };
                match stage(&savepoint, &path, append, base, &cached, next_seq) {
                    Ok(staged) => {
                        savepoint
                            .commit()
                            .map_err(error_at(&path, "release a savepoint"))?;
                        next_seq += staged.records.len() as u64;
                        staged_views.insert(append.run_id, staged.view.clone());
                        for (step, seq) in &staged.steps {
                            staged_steps.insert(step.id, (step.clone(), *seq));
                        }
                        outcomes.push(Ok(staged));
                    }
                    // Dropping the savepoint rolls back whatever the append had written.
                    Err(refused) => outcomes.push(Err(refused)),
                }
            }
        }
        tx.commit().map_err(error_at(&path, "commit"))?;
        self.last_seq = next_seq - 1;
        Ok(())
    }

    fn rebuild(&mut self) -> Result<RebuildStats, StoreError> {
        let path = self.path.clone();
        self.runs.clear();
        self.open_steps.clear();
        // Off for the rebuild only: a DELETE without foreign keys truncates instead of deleting
        // row by row, and rows can be written in the order they are ready. A bigger page cache
        // keeps the projection B-trees in memory while they are rewritten.
        self.conn
            .execute_batch("PRAGMA foreign_keys = OFF; PRAGMA cache_size = -262144;")
            .map_err(error_at(&path, "prepare the rebuild"))?;
        let result = self.refold_projections();
        let restored = self
            .conn
            .execute_batch("PRAGMA foreign_keys = ON; PRAGMA cache_size = -2000;")
            .map_err(error_at(&path, "finish the rebuild"));
        let stats = result?;
        restored?;
        Ok(stats)
    }

    fn refold_projections(&mut self) -> Result<RebuildStats, StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(error_at(&path, "begin a rebuild"))?;
        tx.execute_batch("DELETE FROM steps; DELETE FROM runs;")
            .map_err(error_at(&path, "clear the projections"))?;

        let mut stats = RebuildStats::default();
        let mut runs: HashMap<RunId, RunView> = HashMap::new();
        // Steps stay in memory while open and are written when they finish: step ids are
        // UUIDv7, so finishing order is close to key order and the inserts stay sequential.
        let mut open_steps: StepCache = HashMap::new();
        let mut after = 0i64;
        loop {
            let page = rows::query_events(
                &tx,
                &path,
                "WHERE seq > ?1 ORDER BY seq LIMIT 8192",
                [after],
            )?;
            let Some(last) = page.last() else { break };
            after = last.seq.0 as i64;
            for record in &page {
                stats.events += 1;
                match runs.get_mut(&record.run_id) {
                    Some(view) => view.apply(record),
                    None => {
                        if let Some(view) = RunView::created(record) {
                            runs.insert(record.run_id, view);
                        }
                    }
                }
                if let Some(step) = StepView::started(record) {
                    open_steps.insert(step.id, (step, record.seq));
                } else if let Some(step_id) = step_of(&record.event)
                    && let Some((step, _)) = open_steps.get_mut(&step_id)
                {
                    step.apply(record);
                    if step.status.is_final()
                        && let Some((step, started_seq)) = open_steps.remove(&step_id)
                    {
                        rows::upsert_step(&tx, &step, started_seq)
                            .map_err(error_at(&path, "write a step"))?;
                        stats.steps += 1;
                    }
                }
            }
        }
        let mut open: Vec<_> = open_steps.into_values().collect();
        open.sort_by_key(|(step, _)| step.id);
        for (step, started_seq) in &open {
            rows::upsert_step(&tx, step, *started_seq).map_err(error_at(&path, "write a step"))?;
            stats.steps += 1;
        }
        let mut runs: Vec<RunView> = runs.into_values().collect();
        runs.sort_by_key(|view| view.id);
        for view in &runs {
            rows::upsert_run(&tx, view).map_err(error_at(&path, "write a run"))?;
            stats.runs += 1;
        }
        // Steps of runs that have no RUN_CREATED would break the foreign key later: say so.
        let orphans: i64 = tx
            .query_row(
                "SELECT count(*) FROM steps WHERE run_id NOT IN (SELECT run_id FROM runs)",
                [],
                |row| row.get(0),
            )
            .map_err(error_at(&path, "check the rebuilt steps"))?;
        if orphans > 0 {
            return Err(StoreError::Write {
                path: path.clone(),
                reason: format!("{orphans} steps belong to runs with no RUN_CREATED event"),
            });
        }
        tx.commit().map_err(error_at(&path, "commit the rebuild"))?;
        Ok(stats)
    }
}

fn read_last_seq(conn: &Connection, path: &Path) -> Result<u64, StoreError> {
    let seq: Option<i64> = conn
        .query_row("SELECT max(seq) FROM events", [], |row| row.get(0))
        .map_err(error_at(path, "read the last seq"))?;
    Ok(seq.unwrap_or(0) as u64)
}

/// Writes one append (inside its savepoint) and computes its projections.
fn stage(
    conn: &Connection,
    path: &Path,
    append: &Append,
    cached: Option<RunView>,
    cached_step: &dyn Fn(StepId) -> Option<(StepView, Seq)>,
    first_seq: u64,
) -> Result<Staged, StoreError> {
    let run_id = append.run_id;
    let sql = |action| error_at(path, action);
    let mut view = match cached {
        Some(view) => Some(view),
        None => rows::load_run(conn, path, run_id)?,
    };
    let actual = match &view {
        Some(view) => view.version,
        None => rows::run_version(conn, run_id).map_err(sql("read a run's version"))?,
    };
    if actual != append.expected {
        return Err(StoreError::Conflict {
            run_id,
            expected: append.expected,
            actual,
        });
    }
    validate(append)?;

    let records: Vec<EventRecord> = append
        .events
        .iter()
        .enumerate()
        .map(|(i, event)| EventRecord {
            seq: Seq(first_seq + i as u64),
            run_id,
            version: Version(append.expected.0 + 1 + i as u64),
            ts_ms: append.ts_ms,
            schema: SCHEMA,
            event: event.clone(),
        })
        .collect();
    for record in &records {
        rows::insert_event(conn, record).map_err(sql("append an event"))?;
    }

    if view.is_none() && actual != Version::NONE {
        // The run exists but its projection row does not (dropped by hand, say): refold it.
        let earlier = rows::query_events(
            conn,
            path,
            "WHERE run_id = ?1 AND version <= ?2 ORDER BY version",
            rusqlite::params![run_id.to_string(), actual.0 as i64],
        )?;
        view = RunView::fold(&earlier);
    }
    let mut steps: HashMap<StepId, (StepView, Seq)> = HashMap::new();
    for record in &records {
        match &mut view {
            Some(view) => view.apply(record),
            None => view = RunView::created(record),
        }
        if let Some(step) = StepView::started(record) {
            // Step ids are global (the steps table's key): a second start would overwrite
            // another step's row, and no rebuild could tell the two apart again.
            let owner = if steps.contains_key(&step.id) {
                Some(run_id.to_string())
            } else {
                rows::step_owner(conn, step.id).map_err(sql("read a step"))?
            };
            if let Some(owner) = owner {
                return Err(StoreError::InvalidAppend {
                    run_id,
                    reason: format!("step {} was already started by run {owner}", step.id),
                });
            }
            steps.insert(step.id, (step, record.seq));
        } else if let Some(step_id) = step_of(&record.event) {
            if let std::collections::hash_map::Entry::Vacant(slot) = steps.entry(step_id) {
                let known = match cached_step(step_id) {
                    Some(step) => Some(step),
                    None => rows::load_step(conn, path, step_id)?.map(|step| (step, Seq(0))),
                };
                if let Some(step) = known {
                    slot.insert(step);
                }
            }
            if let Some((step, _)) = steps.get_mut(&step_id) {
                step.apply(record);
            }
        }
    }
    let view = view.ok_or_else(|| StoreError::InvalidAppend {
        run_id,
        reason: "the run has no RUN_CREATED event".to_owned(),
    })?;
    rows::upsert_run(conn, &view).map_err(sql("write a run"))?;
    for (step, started_seq) in steps.values() {
        rows::upsert_step(conn, step, *started_seq).map_err(sql("write a step"))?;
    }
    Ok(Staged {
        records,
        view,
        steps: steps.into_values().collect(),
    })
}

/// The store's own rules; the domain's are `loop_core::decide`'s.
fn validate(append: &Append) -> Result<(), StoreError> {
    let refuse = |reason: &str| {
        Err(StoreError::InvalidAppend {
            run_id: append.run_id,
            reason: reason.to_owned(),
        })
    };
    if append.events.is_empty() {
        return refuse("no events to append");
    }
    for (i, event) in append.events.iter().enumerate() {
        // JSON has no NaN or infinity: serde_json would store `null`, the event would read back
        // without its cost and the run's stored view would no longer parse.
        if let Event::StepFinished(finished) = event
            && let Some(cost) = finished.cost_usd
            && !cost.is_finite()
        {
            return refuse(&format!(
                "event {} ({}): cost_usd {cost} is not a finite number",
                i + 1,
                event.event_type()
            ));
        }
        let first = append.expected == Version::NONE && i == 0;
        let created = event.event_type() == EventType::RunCreated;
        if first && !created {
            return refuse("a run's first event must be RUN_CREATED");
        }
        if !first && created {
            return refuse("RUN_CREATED can only be a run's first event");
        }
    }
    Ok(())
}
