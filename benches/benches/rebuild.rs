//! Projection rebuild: `rebuild_projections()` over the whole log (bar: 1,000,000 events over
//! 10,000 runs in < 3 s), beside a raw rusqlite read + JSON decode of the same file.
//!
//! Size: `LOOP_BENCH_REBUILD_EVENTS` events (default 1,000,000), 100 per run. The log is built
//! through the store's own `append`, 100 events per append from 16 threads.

use std::time::Instant;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use loop_benches::{Fill, bench_dir, bench_size, fill_store, pair_rounds, paired, raw_read_decode};
use loop_store::{EventStore, SqliteStore};
use rusqlite::{Connection, OpenFlags};

fn rebuild(c: &mut Criterion) {
    let fill = Fill::events(
        bench_size("LOOP_BENCH_REBUILD_EVENTS", 1_000_000, 2_000),
        None,
    );
    let dir = bench_dir();
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path).expect("open the store");
    let started = Instant::now();
    let events = fill_store(&store, fill);
    eprintln!(
        "rebuild: filled {events} events over {} runs in {:.1?}",
        fill.runs,
        started.elapsed()
    );

    let started = Instant::now();
    let stats = store.rebuild_projections().expect("rebuild");
    eprintln!(
        "rebuild: first rebuild {stats:?} in {:.2?}",
        started.elapsed()
    );
    assert_eq!((stats.events, stats.runs), (events, fill.runs));

    let raw = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the store's file for the raw read");

    let mut group = c.benchmark_group("rebuild");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(events));
    group.bench_function("store_rebuild_projections", |b| {
        b.iter(|| store.rebuild_projections().expect("rebuild"))
    });
    group.bench_function("raw_rusqlite_read_json_value", |b| {
        b.iter(|| raw_read_decode(&raw))
    });
    group.finish();

    paired(
        "rebuild store_rebuild_projections vs raw_rusqlite_read_json_value",
        events,
        pair_rounds().min(3),
        || {
            let start = Instant::now();
            std::hint::black_box(store.rebuild_projections().expect("rebuild"));
            start.elapsed()
        },
        || {
            let start = Instant::now();
            std::hint::black_box(raw_read_decode(&raw));
            start.elapsed()
        },
    );
}

criterion_group!(benches, rebuild);
criterion_main!(benches);
