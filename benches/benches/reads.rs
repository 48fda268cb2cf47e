//! Reads that scale with what is asked: one run's view, steps and event catch-up on a large
//! log, and listing runs, each beside a raw rusqlite read of the same rows.
//!
//! Size: `LOOP_BENCH_READS_EVENTS` events (default 1,000,000) over `LOOP_BENCH_READS_RUNS` runs
//! (default 100,000), one append per run, 16 appending threads. The run read is one from the
//! middle of the log.
//!
//! - `reads/run_view_and_steps`: what `GET /runs/{id}` reads (the run's view and its steps);
//! - `reads/catch_up_first_page`: the first page of a run's SSE catch-up
//!   (`read_run_after(run, 0, 1024)`), so the time to its first event;
//! - `reads/raw_read_run`: the floor of both: the run's rows by the `(run_id, version)` index,
//!   each payload decoded to a `serde_json::Value`;
//! - `reads/list_runs_page_100`: `GET /runs`'s default page (100 newest runs);
//! - `reads/list_runs_all` beside `reads/raw_read_run_rows`: every run's view, against reading
//!   and decoding (to `serde_json::Value`) every stored row of the `runs` table.

use std::time::Instant;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use loop_benches::{Fill, bench_dir, bench_size, fill_store, pair_rounds, paired, run_id};
use loop_core::{RunId, Seq};
use loop_store::{EventStore, RunQuery, SqliteStore};
use rusqlite::{Connection, OpenFlags};

/// The run's rows, decoded as the raw baseline decodes (see `raw_read_decode`).
fn raw_read_run(conn: &Connection, run: RunId) -> usize {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, run_id, version, type, ts_ms, schema, payload FROM events
             WHERE run_id = ?1 ORDER BY version",
        )
        .expect("prepare");
    let mut rows = stmt.query([run.to_string()]).expect("select");
    let mut count = 0;
    while let Some(row) = rows.next().expect("read a row") {
        let payload: String = row.get(6).expect("payload");
        let value: serde_json::Value = serde_json::from_str(&payload).expect("payload is JSON");
        std::hint::black_box((row.get::<_, i64>(0).expect("seq"), value));
        count += 1;
    }
    count
}

/// Every stored row of the `runs` table, newest first, each view decoded to a `Value`.
fn raw_read_run_rows(conn: &Connection) -> usize {
    let mut stmt = conn
        .prepare_cached("SELECT view FROM runs ORDER BY created_ms DESC, run_id DESC")
        .expect("prepare");
    let mut rows = stmt.query([]).expect("select");
    let mut count = 0;
    while let Some(row) = rows.next().expect("read a row") {
        let text = row.get_ref(0).expect("view").as_str().expect("text");
        let value: serde_json::Value = serde_json::from_str(text).expect("view is JSON");
        std::hint::black_box(value);
        count += 1;
    }
    count
}

fn reads(c: &mut Criterion) {
    let events = bench_size("LOOP_BENCH_READS_EVENTS", 1_000_000, 2_000);
    let runs = bench_size("LOOP_BENCH_READS_RUNS", 100_000, 200).max(1);
    let per_run = (events / runs).max(1);
    let fill = Fill {
        runs,
        events_per_run: per_run,
        events_per_append: per_run,
        threads: 16,
        first_run: 0,
    };
    let dir = bench_dir();
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path).expect("open the store");
    let started = Instant::now();
    let events = fill_store(&store, fill);
    eprintln!(
        "reads: filled {events} events over {runs} runs in {:.1?}",
        started.elapsed()
    );
    let raw = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the store's file for the raw read");
    let run = run_id(runs / 2);
    assert_eq!(raw_read_run(&raw, run) as u64, per_run);
    assert_eq!(
        store
            .read_run_after(run, Seq(0), 1024)
            .expect("catch up")
            .len() as u64,
        per_run.min(1024)
    );

    let mut group = c.benchmark_group("reads");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    let view_and_steps = || {
        let view = store.run_view(run).expect("run view").expect("the run");
        let steps = store.steps(run).expect("steps");
        std::hint::black_box((view, steps));
    };
    group.bench_function("run_view_and_steps", |b| b.iter(view_and_steps));
    group.bench_function("catch_up_first_page", |b| {
        b.iter(|| store.read_run_after(run, Seq(0), 1024).expect("catch up"))
    });
    group.bench_function("raw_read_run", |b| b.iter(|| raw_read_run(&raw, run)));
    let newest = RunQuery {
        limit: Some(100),
        ..RunQuery::default()
    };
    group.bench_function("list_runs_page_100", |b| {
        b.iter(|| store.list_runs(&newest).expect("list"))
    });
    group.bench_function("list_runs_all", |b| {
        b.iter(|| store.list_runs(&RunQuery::default()).expect("list"))
    });
    group.bench_function("raw_read_run_rows", |b| b.iter(|| raw_read_run_rows(&raw)));
    group.finish();

    // The bars' own figures: the median time of one call, on this log.
    let median_of = |calls: usize, mut call: Box<dyn FnMut() + '_>| {
        let mut times: Vec<std::time::Duration> = (0..calls)
            .map(|_| {
                let start = Instant::now();
                call();
                start.elapsed()
            })
            .collect();
        times.sort();
        times[times.len() / 2]
    };
    let calls = if loop_benches::benchmarking() { 101 } else { 3 };
    let view = median_of(calls, Box::new(view_and_steps));
    let first_page = median_of(
        calls,
        Box::new(|| {
            std::hint::black_box(store.read_run_after(run, Seq(0), 1024).expect("catch up"));
        }),
    );
    let raw_run = median_of(
        calls,
        Box::new(|| {
            std::hint::black_box(raw_read_run(&raw, run));
        }),
    );
    let page = median_of(
        calls.min(21),
        Box::new(|| {
            std::hint::black_box(store.list_runs(&newest).expect("list"));
        }),
    );
    let log = format!("{events}-event log, {runs} runs");
    for (what, took, bar) in [
        ("a run's view and steps (GET /runs/{id})", view, "< 50 ms"),
        ("a run's catch-up, first page (SSE)", first_page, "< 50 ms"),
        ("the newest 100 runs (GET /runs)", page, "< 100 ms"),
    ] {
        loop_benches::row(&[
            &format!("latency: {what}, {log}"),
            &format!("{per_run}"),
            &format!("{:.3} ms median of {calls}", took.as_secs_f64() * 1e3),
            &format!("raw run read {:.3} ms", raw_run.as_secs_f64() * 1e3),
            &format!("bar {bar}"),
        ]);
    }

    const ROUND: u64 = 100;
    paired(
        "reads run_view_and_steps vs raw_read_run",
        ROUND * per_run,
        pair_rounds(),
        || {
            let start = Instant::now();
            (0..ROUND).for_each(|_| view_and_steps());
            start.elapsed()
        },
        || {
            let start = Instant::now();
            (0..ROUND).for_each(|_| {
                std::hint::black_box(raw_read_run(&raw, run));
            });
            start.elapsed()
        },
    );
    paired(
        "reads list_runs_all vs raw_read_run_rows",
        runs,
        pair_rounds().min(5),
        || {
            let start = Instant::now();
            std::hint::black_box(store.list_runs(&RunQuery::default()).expect("list"));
            start.elapsed()
        },
        || {
            let start = Instant::now();
            std::hint::black_box(raw_read_run_rows(&raw));
            start.elapsed()
        },
    );
}

criterion_group!(benches, reads);
criterion_main!(benches);
