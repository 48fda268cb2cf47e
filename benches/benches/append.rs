//! Durable append: the store's group-committing writer beside raw rusqlite insert+commit, both
//! on disk with WAL and `synchronous=FULL`.
//!
//! - `append_lone`: one appender, one event per call, against one `INSERT` + `COMMIT` per event.
//! - `append_16_appenders`: 16 threads, each with its own run, each waiting for its append before
//!   the next (as the runtime does); wall time for a fixed number of events, so the figure is
//!   events/s of the whole. The raw baseline gives each thread its own connection (SQLite then
//!   serialises the writers on its file lock, with `busy_timeout`). The fairer floor beside it,
//!   `bare_group_commit`, is the store's commit scheme with nothing else: one writer thread on
//!   its own connection takes whatever rows are queued, inserts them into the events table in
//!   one transaction and commits (one fsync), then answers; no checks, no projection. The bar
//!   (≥ 50,000 events/s, or ≥ 80% of this floor when the disk cannot) is read from the
//!   `paired` line printed after the group.

use std::sync::Barrier;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use loop_benches::{
    RawRow, RunScript, TS_MS, bench_dir, pair_rounds, paired, raw_connection, raw_insert_commit,
};
use loop_core::{Event, RunId, Version};
use loop_store::{EventStore, SqliteStore};
use rusqlite::Connection;

/// Concurrent appenders.
const APPENDERS: usize = 16;
/// Appends each appender makes per benchmark iteration.
const APPENDS_PER_ITER: u64 = 16;

fn append_lone(c: &mut Criterion) {
    let dir = bench_dir();
    let store = SqliteStore::open(dir.path().join("store.db")).expect("open the store");
    let mut script = RunScript::new(0);
    let created = script.take(3);
    store
        .append(script.run_id(), Version::NONE, TS_MS, created)
        .expect("create the run");

    let mut raw = raw_connection(&dir.path().join("raw.db"));
    let mut raw_script = RunScript::new(0);
    let mut raw_seq = 1i64;
    for _ in 0..3 {
        let version = raw_script.version().next();
        let event = raw_script.next_event();
        raw_insert_commit(
            &mut raw,
            Some(raw_seq),
            &[RawRow::new(raw_script.run_id(), version, &event)],
        );
        raw_seq += 1;
    }

    let mut group = c.benchmark_group("append_lone");
    group.throughput(Throughput::Elements(1));
    let mut store_append = || {
        let expected = script.version();
        let event = script.next_event();
        store
            .append(script.run_id(), expected, TS_MS, vec![event])
            .expect("append");
    };
    let mut raw_append = || {
        let version = raw_script.version().next();
        let event = raw_script.next_event();
        // The same encoding work the store does: the run id as text, the payload as JSON.
        let row = RawRow::new(raw_script.run_id(), version, &event);
        raw_insert_commit(&mut raw, Some(raw_seq), std::slice::from_ref(&row));
        raw_seq += 1;
    };
    group.bench_function("store", |b| b.iter(&mut store_append));
    group.bench_function("raw_rusqlite", |b| b.iter(&mut raw_append));
    group.finish();

    const ROUND: u64 = 200;
    paired(
        "append_lone store vs raw_rusqlite",
        ROUND,
        pair_rounds(),
        || {
            let start = Instant::now();
            (0..ROUND).for_each(|_| store_append());
            start.elapsed()
        },
        || {
            let start = Instant::now();
            (0..ROUND).for_each(|_| raw_append());
            start.elapsed()
        },
    );
}

/// Runs `appends_each` appends of `batch` events on each script's run, one thread per script,
/// and returns the wall time from the common start to the last answer.
fn store_appenders(
    store: &SqliteStore,
    scripts: &mut [RunScript],
    appends_each: u64,
    batch: usize,
) -> Duration {
    let barrier = Barrier::new(scripts.len() + 1);
    let mut start = None;
    std::thread::scope(|scope| {
        for script in scripts.iter_mut() {
            let barrier = &barrier;
            // Built before the clock starts: the benchmark times the store, not the fixtures.
            let appends: Vec<(RunId, Version, Vec<Event>)> = (0..appends_each)
                .map(|_| {
                    let expected = script.version();
                    (script.run_id(), expected, script.take(batch))
                })
                .collect();
            scope.spawn(move || {
                barrier.wait();
                for (run_id, expected, events) in appends {
                    store
                        .append(run_id, expected, TS_MS, events)
                        .expect("append");
                }
            });
        }
        barrier.wait();
        start = Some(Instant::now());
    });
    start.expect("the appenders started").elapsed()
}

/// The raw baseline of [`store_appenders`]: each thread inserts and commits on its own
/// connection.
fn raw_appenders(
    conns: &mut [Connection],
    scripts: &mut [RunScript],
    appends_each: u64,
    batch: usize,
) -> Duration {
    let barrier = Barrier::new(scripts.len() + 1);
    let mut start = None;
    std::thread::scope(|scope| {
        for (conn, script) in conns.iter_mut().zip(scripts.iter_mut()) {
            let barrier = &barrier;
            let appends: Vec<Vec<RawRow>> = (0..appends_each)
                .map(|_| {
                    (0..batch)
                        .map(|_| {
                            let version = script.version().next();
                            let event = script.next_event();
                            RawRow::new(script.run_id(), version, &event)
                        })
                        .collect()
                })
                .collect();
            scope.spawn(move || {
                barrier.wait();
                for rows in &appends {
                    raw_insert_commit(conn, None, rows);
                }
            });
        }
        barrier.wait();
        start = Some(Instant::now());
    });
    start.expect("the appenders started").elapsed()
}

/// One request to the bare group commit: rows to insert, and where to say they are durable.
type GroupRequest = (Vec<RawRow>, SyncSender<()>);

/// The store's commit scheme with nothing else (see the module's comment).
struct BareGroupCommit {
    requests: Option<Sender<GroupRequest>>,
    writer: Option<JoinHandle<()>>,
}

impl BareGroupCommit {
    fn start(path: &std::path::Path) -> BareGroupCommit {
        let mut conn = raw_connection(path);
        let (requests, queue) = mpsc::channel::<GroupRequest>();
        let writer = std::thread::spawn(move || Self::serve(&mut conn, &queue));
        BareGroupCommit {
            requests: Some(requests),
            writer: Some(writer),
        }
    }

    fn serve(conn: &mut Connection, queue: &Receiver<GroupRequest>) {
        while let Ok(first) = queue.recv() {
            let mut group = vec![first];
            while let Ok(next) = queue.try_recv() {
                group.push(next);
            }
            let rows: Vec<RawRow> = group.iter().flat_map(|(rows, _)| rows.clone()).collect();
            raw_insert_commit(conn, None, &rows);
            for (_, reply) in group {
                let _ = reply.send(());
            }
        }
    }

    fn append(&self, rows: Vec<RawRow>) {
        let (reply, done) = mpsc::sync_channel(1);
        let requests = self.requests.as_ref().expect("the writer is running");
        requests.send((rows, reply)).expect("the writer is running");
        done.recv().expect("the writer answers");
    }
}

impl Drop for BareGroupCommit {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// [`store_appenders`] against the bare group commit.
fn group_appenders(
    group: &BareGroupCommit,
    scripts: &mut [RunScript],
    appends_each: u64,
    batch: usize,
) -> Duration {
    let barrier = Barrier::new(scripts.len() + 1);
    let mut start = None;
    std::thread::scope(|scope| {
        for script in scripts.iter_mut() {
            let barrier = &barrier;
            let appends: Vec<Vec<RawRow>> = (0..appends_each)
                .map(|_| {
                    (0..batch)
                        .map(|_| {
                            let version = script.version().next();
                            let event = script.next_event();
                            RawRow::new(script.run_id(), version, &event)
                        })
                        .collect()
                })
                .collect();
            scope.spawn(move || {
                barrier.wait();
                for rows in appends {
                    group.append(rows);
                }
            });
        }
        barrier.wait();
        start = Some(Instant::now());
    });
    start.expect("the appenders started").elapsed()
}

/// A store on a new file in `dir` with one created run per appender, and their scripts.
fn store_with_runs(dir: &std::path::Path, file: &str) -> (SqliteStore, Vec<RunScript>) {
    let store = SqliteStore::open(dir.join(file)).expect("open the store");
    let mut scripts: Vec<RunScript> = (0..APPENDERS as u64).map(RunScript::new).collect();
    for script in &mut scripts {
        let created = script.take(3);
        store
            .append(script.run_id(), Version::NONE, TS_MS, created)
            .expect("create a run");
    }
    (store, scripts)
}

/// The bare group commit on a new file in `dir`, with the same first events per run as
/// [`store_with_runs`] writes, and the scripts to go on from there.
fn bare_with_runs(dir: &std::path::Path, file: &str) -> (BareGroupCommit, Vec<RunScript>) {
    let group = BareGroupCommit::start(&dir.join(file));
    let mut scripts: Vec<RunScript> = (0..APPENDERS as u64).map(RunScript::new).collect();
    for script in &mut scripts {
        let rows = (0..3)
            .map(|_| {
                let version = script.version().next();
                let event = script.next_event();
                RawRow::new(script.run_id(), version, &event)
            })
            .collect();
        group.append(rows);
    }
    (group, scripts)
}

fn append_concurrent(c: &mut Criterion) {
    let dir = bench_dir();
    let (store, mut scripts) = store_with_runs(dir.path(), "store.db");

    let raw_path = dir.path().join("raw.db");
    let mut conns: Vec<Connection> = (0..APPENDERS).map(|_| raw_connection(&raw_path)).collect();
    let mut raw_scripts: Vec<RunScript> = (0..APPENDERS as u64).map(RunScript::new).collect();
    let (group_commit, mut group_scripts) = bare_with_runs(dir.path(), "group.db");

    let mut group = c.benchmark_group("append_16_appenders");
    group.sample_size(10);
    for batch in [1usize, 10] {
        group.throughput(Throughput::Elements(
            APPENDERS as u64 * APPENDS_PER_ITER * batch as u64,
        ));
        group.bench_function(format!("store_batch{batch}"), |b| {
            b.iter_custom(|iters| {
                store_appenders(&store, &mut scripts, iters * APPENDS_PER_ITER, batch)
            });
        });
        group.bench_function(format!("raw_rusqlite_batch{batch}"), |b| {
            b.iter_custom(|iters| {
                raw_appenders(
                    &mut conns,
                    &mut raw_scripts,
                    iters * APPENDS_PER_ITER,
                    batch,
                )
            });
        });
        group.bench_function(format!("bare_group_commit_batch{batch}"), |b| {
            b.iter_custom(|iters| {
                group_appenders(
                    &group_commit,
                    &mut group_scripts,
                    iters * APPENDS_PER_ITER,
                    batch,
                )
            });
        });
    }
    group.finish();

    // The bar's ratio: the store against the bare group commit, alternated, 1 event per append.
    // Both start on new files, so neither carries what the group above wrote to it (a filter
    // that ran only the store's functions used to leave it alone with a grown file).
    let (store, mut scripts) = store_with_runs(dir.path(), "paired-store.db");
    let (group_commit, mut group_scripts) = bare_with_runs(dir.path(), "paired-group.db");
    const ROUND: u64 = 32;
    paired(
        "append_16_appenders store_batch1 vs bare_group_commit_batch1",
        APPENDERS as u64 * ROUND,
        pair_rounds(),
        || store_appenders(&store, &mut scripts, ROUND, 1),
        || group_appenders(&group_commit, &mut group_scripts, ROUND, 1),
    );
}

criterion_group!(benches, append_lone, append_concurrent);
criterion_main!(benches);
