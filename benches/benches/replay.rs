//! Replay: folding the whole log from the database, beside a raw rusqlite read of the same file
//! with each payload decoded to a `serde_json::Value`.
//!
//! Size: `LOOP_BENCH_REPLAY_EVENTS` events (default 200,000), 100 per run.

use std::time::Instant;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use loop_benches::{
    Fill, bench_dir, bench_size, fill_store, fold_from_store, pair_rounds, paired, raw_read_decode,
};
use loop_core::{EventRecord, Seq};
use loop_store::{EventStore, SqliteStore};
use rusqlite::{Connection, OpenFlags};

fn replay(c: &mut Criterion) {
    let fill = Fill::events(bench_size("LOOP_BENCH_REPLAY_EVENTS", 200_000, 2_000), None);
    let dir = bench_dir();
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path).expect("open the store");
    let started = Instant::now();
    let events = fill_store(&store, fill);
    eprintln!(
        "replay: filled {events} events over {} runs in {:.1?}",
        fill.runs,
        started.elapsed()
    );
    assert_eq!(fold_from_store(&store), (events, fill.runs as usize));

    let raw = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the store's file for the raw read");
    assert_eq!(raw_read_decode(&raw), events);

    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(events));
    group.bench_function("store_fold", |b| b.iter(|| fold_from_store(&store)));
    group.bench_function("raw_rusqlite_read_json_value", |b| {
        b.iter(|| raw_read_decode(&raw))
    });
    // Where the fold's time goes: the store's read and decode alone, without folding.
    group.bench_function("store_read_all_only", |b| {
        b.iter(|| {
            let mut after = Seq(0);
            let mut n = 0u64;
            loop {
                let page: Vec<EventRecord> = store.read_all(after, 8192).expect("read_all");
                let Some(last) = page.last() else { break };
                after = last.seq;
                n += page.len() as u64;
            }
            n
        })
    });
    group.finish();

    paired(
        "replay store_fold vs raw_rusqlite_read_json_value",
        events,
        pair_rounds(),
        || {
            let start = Instant::now();
            std::hint::black_box(fold_from_store(&store));
            start.elapsed()
        },
        || {
            let start = Instant::now();
            std::hint::black_box(raw_read_decode(&raw));
            start.elapsed()
        },
    );
}

criterion_group!(benches, replay);
criterion_main!(benches);
