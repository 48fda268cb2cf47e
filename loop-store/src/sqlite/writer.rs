//! The single writer: every append goes through one thread that commits them in groups.
//!
//! Appenders queue requests; the writer takes whatever is queued (up to [`MAX_BATCH`]) and
//! commits the whole group in one transaction with one fsync (`synchronous=FULL`). Only then
//! does it answer the appenders and publish the records to subscribers. Durability is that of
//! a lone commit; the cost of the fsync is shared.
//!
//! An append is checked completely before it writes anything (expected version, the store's
//! rules, a step id started twice), so a refused append leaves nothing behind and needs no
//! savepoint: a savepoint per append used to copy every page an append touched into the
//! statement journal. A failure while writing (a full disk, say) is not the append's fault:
//! the whole group is rolled back and every appender in it hears why.
//!
//! An append writes its events and, only when needed, its run's row (see `rows`): when a
//! column the row is searched by changes, or every [`rows::SNAPSHOT_EVERY`] events. Steps have
//! no rows. So most appends write the events rows and nothing else, as a raw insert would.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};

use loop_core::projection::RunView;
use loop_core::{Event, EventRecord, RunId, Seq, Version};
use rusqlite::{Connection, TransactionBehavior};

use crate::append;
use crate::error::StoreError;
use crate::sqlite::rows::{self, RowKeys, RowWrite};
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

/// What one append wrote, kept apart until the group commits.
struct Staged {
    records: Vec<EventRecord>,
    run: KnownRun,
}

/// A run as the writer knows it: its view and what its stored row holds.
#[derive(Clone)]
struct KnownRun {
    view: RunView,
    row: RowKeys,
}

pub(crate) struct Writer {
    conn: Connection,
    path: PathBuf,
    last_seq: u64,
    /// `PRAGMA data_version` when this writer last looked: it changes when any other connection
    /// commits, and only then can the log's end or a run's row differ from what is cached.
    data_version: i64,
    /// Committed runs, to spare reads and a fold per append.
    runs: HashMap<RunId, KnownRun>,
    subscribers: Arc<Subscribers>,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        path: PathBuf,
        subscribers: Arc<Subscribers>,
    ) -> Result<Writer, StoreError> {
        let last_seq = read_last_seq(&conn, &path)?;
        let data_version = read_data_version(&conn, &path)?;
        subscribers.published_up_to(Seq(last_seq));
        Ok(Writer {
            conn,
            path,
            last_seq,
            data_version,
            runs: HashMap::new(),
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

    fn commit_batch(&mut self, mut batch: Vec<Append>) {
        let mut outcomes: Vec<Result<Staged, StoreError>> = Vec::with_capacity(batch.len());
        let committed = self.write_batch(&mut batch, &mut outcomes);

        if let Err(error) = committed {
            // Nothing of the batch is durable: every appender that was about to succeed hears
            // why, and the in-memory state is re-read from the database.
            let reason = error.to_string();
            self.runs.clear();
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

        // The records are copied for subscribers only when there are any.
        let publishing = self.subscribers.any();
        let mut published = Vec::new();
        for (append, outcome) in batch.into_iter().zip(outcomes) {
            let answer = outcome.map(|staged| {
                if self.runs.len() >= RUN_CACHE_LIMIT {
                    self.runs.clear();
                }
                self.runs.insert(append.run_id, staged.run);
                if publishing {
                    published.extend_from_slice(&staged.records);
                }
                staged.records
            });
            let _ = append.reply.send(answer);
        }
        if !published.is_empty() {
            self.subscribers.publish(published.into());
        }
        // What is committed counts as handed out either way: the watcher reads only what other
        // processes commit.
        self.subscribers.published_up_to(Seq(self.last_seq));
    }

    /// Writes every append of the batch in one transaction. Each outcome is pushed in order;
    /// an `Err` return means the transaction as a whole did not commit.
    fn write_batch(
        &mut self,
        batch: &mut [Append],
        outcomes: &mut Vec<Result<Staged, StoreError>>,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(error_at(&path, "begin a write"))?;
        // Another connection (`loopctl exec` or `replay` beside `loopd`, or a row deleted by
        // hand) may have committed since our last commit; then our next seq and cached runs
        // are stale. Holding the write lock, the file is the truth. `data_version` answers
        // that without reading a page, which `max(seq)` on every group did not.
        let data_version = read_data_version(&tx, &path)?;
        if data_version != self.data_version {
            self.runs.clear();
            self.last_seq = read_last_seq(&tx, &path)?;
            self.data_version = data_version;
        }
        let mut next_seq = self.last_seq + 1;
        // Where this group's latest staged view of a run is, in `outcomes`. A run's view is
        // taken out of the cache, not cloned (a view is a kilobyte of strings and maps, and two
        // clones an append were a fifth of the writer's own time with 16 appenders); it goes
        // back when the group commits, and a refused append's run is read again next time.
        let mut latest: HashMap<RunId, usize> = HashMap::new();
        for append in batch.iter_mut() {
            let base = match latest.get(&append.run_id) {
                Some(&index) => outcomes[index].as_ref().ok().map(|s| s.run.clone()),
                None => self.runs.remove(&append.run_id),
            };
            match stage(&tx, &path, append, base, next_seq)? {
                Ok(staged) => {
                    next_seq += staged.records.len() as u64;
                    latest.insert(append.run_id, outcomes.len());
                    outcomes.push(Ok(staged));
                }
                Err(refused) => outcomes.push(Err(refused)),
            }
        }
        if next_seq == self.last_seq + 1 {
            // Every append was refused and none wrote anything: nothing to make durable.
            tx.rollback().map_err(error_at(&path, "roll back"))?;
            return Ok(());
        }
        tx.commit().map_err(error_at(&path, "commit"))?;
        self.last_seq = next_seq - 1;
        Ok(())
    }

    fn rebuild(&mut self) -> Result<RebuildStats, StoreError> {
        let path = self.path.clone();
        self.runs.clear();
        // A bigger page cache for the rebuild only, so that the `runs` B-tree and the pages of
        // the log it reads stay in memory while the rows are rewritten.
        self.conn
            .execute_batch("PRAGMA cache_size = -262144;")
            .map_err(error_at(&path, "prepare the rebuild"))?;
        let result = self.refold_projections();
        let restored = self
            .conn
            .execute_batch("PRAGMA cache_size = -2000;")
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
        tx.execute_batch("DELETE FROM runs;")
            .map_err(error_at(&path, "clear the projections"))?;

        let mut stats = RebuildStats::default();
        let mut runs: HashMap<RunId, RunView> = HashMap::new();
        // One pass over the log in seq order; steps are folded when read, so only counted.
        rows::for_each_event(&tx, &path, "ORDER BY seq", [], |record| {
            stats.events += 1;
            if matches!(record.event, Event::StepStarted(_)) {
                stats.steps += 1;
            }
            match runs.get_mut(&record.run_id) {
                Some(view) => view.apply(&record),
                None => {
                    if let Some(view) = RunView::created(&record) {
                        runs.insert(record.run_id, view);
                    }
                }
            }
            Ok(())
        })?;
        // In key order: the inserts append to the `runs` B-tree instead of splitting it.
        let mut runs: Vec<RunView> = runs.into_values().collect();
        runs.sort_by_key(|view| view.id);
        for view in &runs {
            rows::upsert_run(&tx, view).map_err(error_at(&path, "write a run"))?;
            stats.runs += 1;
        }
        tx.commit().map_err(error_at(&path, "commit the rebuild"))?;
        Ok(stats)
    }
}

fn read_data_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    conn.prepare_cached("PRAGMA data_version")
        .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
        .map_err(error_at(path, "read the data version"))
}

fn read_last_seq(conn: &Connection, path: &Path) -> Result<u64, StoreError> {
    let seq: Option<i64> = conn
        .query_row("SELECT max(seq) FROM events", [], |row| row.get(0))
        .map_err(error_at(path, "read the last seq"))?;
    Ok(seq.unwrap_or(0) as u64)
}

/// Checks one append against the run's view (`cached`, else read), then writes it. The outer
/// `Err` is a failure to write, after which the transaction must not commit; the inner one a
/// refusal, for which nothing was written.
fn stage(
    conn: &Connection,
    path: &Path,
    append: &mut Append,
    cached: Option<KnownRun>,
    first_seq: u64,
) -> Result<Result<Staged, StoreError>, StoreError> {
    let sql = |action| error_at(path, action);
    let (records, mut run, row_write) = match check(conn, path, append, cached, first_seq) {
        Ok(checked) => checked,
        Err(refused) => return Ok(Err(refused)),
    };
    for record in &records {
        rows::insert_event(conn, record).map_err(sql("append an event"))?;
    }
    match row_write {
        RowWrite::Keep => {}
        RowWrite::Snapshot => rows::update_snapshot(conn, &run.view).map_err(sql("write a run"))?,
        RowWrite::Whole => rows::upsert_run(conn, &run.view).map_err(sql("write a run"))?,
    }
    if row_write != RowWrite::Keep {
        run.row = RowKeys::of(&run.view);
    }
    Ok(Ok(Staged { records, run }))
}

/// Everything that may refuse an append, before anything is written: the records it would
/// store (its events, moved out of it), the run after them, and what of the run's row must be
/// rewritten. The checks themselves are `append::fold`'s; this reads what they need.
fn check(
    conn: &Connection,
    path: &Path,
    append: &mut Append,
    cached: Option<KnownRun>,
    first_seq: u64,
) -> Result<(Vec<EventRecord>, KnownRun, RowWrite), StoreError> {
    let run_id = append.run_id;
    let sql = |action| error_at(path, action);
    // A cached run's row is as this writer left it: any other connection's commit (a row
    // deleted by hand, say) changes `data_version` and empties the cache.
    let (row, mut view) = match cached {
        Some(run) => (Some(run.row), Some(run.view)),
        None => {
            let row = rows::row_keys(conn, run_id).map_err(sql("read a run's row"))?;
            let view = match row {
                Some(_) => rows::load_run(conn, path, run_id)?,
                None => None,
            };
            (row, view)
        }
    };
    let actual = match &view {
        Some(view) => view.version,
        None => rows::run_version(conn, run_id).map_err(sql("read a run's version"))?,
    };
    if view.is_none() && actual != Version::NONE && actual == append.expected {
        // The run exists but its row does not (dropped by hand, say): refold it.
        let earlier = rows::query_events(
            conn,
            path,
            "WHERE run_id = ?1 AND version <= ?2 ORDER BY version",
            rusqlite::params![run_id.to_string(), actual.0 as i64],
        )?;
        view = RunView::fold(&earlier);
    }
    let proposed = append::Proposed {
        run_id,
        expected: append.expected,
        ts_ms: append.ts_ms,
        events: std::mem::take(&mut append.events),
    };
    // Earlier appends of this group are in the transaction already, so the owners seen here
    // include theirs.
    let owner = |step_id| rows::step_owner(conn, step_id).map_err(sql("read a step"));
    let folded = append::fold(proposed, actual, &mut view, Seq(first_seq), owner)?;
    let view = view.expect("a folded append leaves its run a view");
    let row_write = row
        .as_ref()
        .map_or(RowWrite::Whole, |row| row.write_for(&view));
    // A run without a row gets one now (`RowWrite::Whole`), so these keys are replaced.
    let row = row.unwrap_or_else(|| RowKeys::of(&view));
    Ok((folded.records, KnownRun { view, row }, row_write))
}
