//! The PostgreSQL store beside a raw client, on one real server started for the run
//! (`loop_testkit::postgres`: a fresh cluster in a temp dir, `fsync=on`, on this machine's disk).
//!
//! - `append_lone`: one appender, one event per call: `PgStore::append` (advisory lock, version
//!   and step checks, the run's row, the notification) against the raw client's one `INSERT`
//!   of the same row in its own transaction, on its own connection.
//! - `append_16_appenders`: 16 threads each appending its own run's events one at a time,
//!   against 16 raw connections inserting as fast as they can (no lock, no check: the ceiling
//!   the server and disk allow, which serialised appends can only approach).
//! - `replay`: `loop_store::replay` over the whole log (every event read, decoded and folded,
//!   every run compared) against the raw client reading and decoding the same rows in pages.
//! - `rebuild`: the log grown to `LOOP_BENCH_PG_REBUILD_EVENTS` (default 1,000,000; bar < 5 s),
//!   then `rebuild_projections` (every run's row and the step index dropped and made again from
//!   the events, in one transaction) against the same raw read and decode of every event.
//!
//! Each pair is timed alternately in rounds (`LOOP_BENCH_PAIRS`, default 7); the ratio is the
//! median of the per-round ratios, with its range. Sizes: `LOOP_BENCH_PG_EVENTS` (replay log,
//! default 100,000). `LOOP_BENCH_PG_ONLY=lone,appenders,replay,rebuild` (any of them) times only
//! those pairs, to profile or rerun one figure (the logs are filled all the same). Without
//! PostgreSQL installed the benchmark says so and prints no rows.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use loop_benches::{Fill, RawRow, RunScript, TS_MS, bench_size, fill_store, pair_rounds, paired};
use loop_core::{Event, EventType, Version};
use loop_store::{EventStore, PgStore};

const APPENDERS: usize = 16;
const ROUND: u64 = 200;
const CONCURRENT_ROUND: u64 = 16 * 25;

const RAW_TABLE: &str = "CREATE TABLE raw_events (
    seq bigserial PRIMARY KEY, run_id text NOT NULL, version bigint NOT NULL, type text NOT NULL,
    ts_ms bigint NOT NULL, schema integer NOT NULL, payload text NOT NULL,
    UNIQUE (run_id, version))";

/// A raw client: one connection driven by its own small runtime, blocking like the store.
struct Raw {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Raw {
    fn connect(url: &str) -> Raw {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let client = runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(async move {
                let _ = connection.await;
            });
            client
        });
        Raw { runtime, client }
    }

    fn insert(&self, row: &RawRow) {
        self.runtime.block_on(async {
            self.client
                .execute(
                    "INSERT INTO raw_events (run_id, version, type, ts_ms, schema, payload)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &row.run_id,
                        &row.version,
                        &row.event_type,
                        &row.ts_ms,
                        &(row.schema as i32),
                        &row.payload,
                    ],
                )
                .await
                .expect("insert");
        });
    }

    /// Reads and decodes every event in pages, as a replay reads them; the number read.
    fn read_decode(&self) -> u64 {
        self.runtime.block_on(async {
            let mut after = 0i64;
            let mut count = 0u64;
            loop {
                let rows = self
                    .client
                    .query(
                        "SELECT seq, run_id, version, type, ts_ms, schema, payload FROM events
                         WHERE seq > $1 ORDER BY seq LIMIT 1000",
                        &[&after],
                    )
                    .await
                    .expect("read");
                let Some(last) = rows.last() else {
                    return count;
                };
                after = last.get(0);
                for row in &rows {
                    let event_type: EventType = row.get::<_, &str>(3).parse().expect("type");
                    let event = Event::decode(event_type, row.get(6)).expect("decode");
                    let _: &str = row.get(1);
                    std::hint::black_box(event);
                    count += 1;
                }
            }
        })
    }
}

/// Whether `LOOP_BENCH_PG_ONLY` (unset: every pair) names `part`.
fn timed(part: &str) -> bool {
    match std::env::var("LOOP_BENCH_PG_ONLY") {
        Ok(only) => only.split(',').any(|p| p.trim() == part),
        Err(_) => true,
    }
}

fn main() {
    let Some(server) = loop_testkit::postgres::Postgres::start("postgres benchmark") else {
        return;
    };
    let rounds = pair_rounds();
    let store = PgStore::connect(&server.url).expect("connect the store");
    let raw = Raw::connect(&server.url);
    raw.runtime
        .block_on(raw.client.batch_execute(RAW_TABLE))
        .expect("raw table");

    // append_lone
    let mut script = RunScript::new(0);
    store
        .append(script.run_id(), Version::NONE, TS_MS, script.take(3))
        .expect("create a run");
    let mut raw_script = RunScript::new(0);
    let mut append_round = || {
        let started = Instant::now();
        for _ in 0..ROUND {
            let expected = script.version();
            let event = script.next_event();
            store
                .append(script.run_id(), expected, TS_MS, vec![event])
                .expect("append");
        }
        started.elapsed()
    };
    let mut raw_round = || {
        let started = Instant::now();
        for _ in 0..ROUND {
            let version = raw_script.version().next();
            let event = raw_script.next_event();
            raw.insert(&RawRow::new(raw_script.run_id(), version, &event));
        }
        started.elapsed()
    };
    paired(
        "postgres append_lone store vs raw INSERT",
        ROUND,
        if timed("lone") { rounds } else { 0 },
        &mut append_round,
        &mut raw_round,
    );

    // append_16_appenders
    let store = Arc::new(store);
    let url = server.url.clone();
    let mut next_run = 100u64;
    let mut concurrent_store = || {
        let start = Arc::new(Barrier::new(APPENDERS + 1));
        let threads: Vec<_> = (0..APPENDERS)
            .map(|_| {
                next_run += 1;
                let (store, start) = (Arc::clone(&store), Arc::clone(&start));
                let mut script = RunScript::new(next_run);
                std::thread::spawn(move || {
                    store
                        .append(script.run_id(), Version::NONE, TS_MS, script.take(3))
                        .expect("create");
                    start.wait();
                    for _ in 0..CONCURRENT_ROUND / APPENDERS as u64 {
                        let expected = script.version();
                        let event = script.next_event();
                        store
                            .append(script.run_id(), expected, TS_MS, vec![event])
                            .expect("append");
                    }
                })
            })
            .collect();
        start.wait();
        let started = Instant::now();
        for thread in threads {
            thread.join().expect("appender");
        }
        started.elapsed()
    };
    let raws: Vec<Raw> = (0..APPENDERS).map(|_| Raw::connect(&url)).collect();
    let raws = Arc::new(raws);
    let mut next_raw_run = 100u64;
    let mut concurrent_raw = || {
        let start = Arc::new(Barrier::new(APPENDERS + 1));
        let threads: Vec<_> = (0..APPENDERS)
            .map(|i| {
                next_raw_run += 1;
                let (raws, start) = (Arc::clone(&raws), Arc::clone(&start));
                let mut script = RunScript::new(next_raw_run);
                std::thread::spawn(move || {
                    start.wait();
                    for _ in 0..CONCURRENT_ROUND / APPENDERS as u64 {
                        let version = script.version().next();
                        let event = script.next_event();
                        raws[i].insert(&RawRow::new(script.run_id(), version, &event));
                    }
                })
            })
            .collect();
        start.wait();
        let started = Instant::now();
        for thread in threads {
            thread.join().expect("appender");
        }
        started.elapsed()
    };
    paired(
        "postgres append_16_appenders store vs raw INSERT",
        CONCURRENT_ROUND,
        if timed("appenders") { rounds } else { 0 },
        &mut concurrent_store,
        &mut concurrent_raw,
    );

    if !timed("replay") && !timed("rebuild") {
        return; // no log to fill
    }
    // replay: fill the log to the size asked, 24 events a run in batches of 8.
    let target = bench_size("LOOP_BENCH_PG_EVENTS", 100_000, 2_000);
    let mut run = 10_000u64;
    let filled = Instant::now();
    while store.last_seq().expect("last seq").0 < target {
        run += 1;
        let mut script = RunScript::new(run);
        for _ in 0..3 {
            let expected = script.version();
            store
                .append(script.run_id(), expected, TS_MS, script.take(8))
                .expect("fill");
        }
    }
    let events = store.last_seq().expect("last seq").0;
    eprintln!(
        "postgres: filled to {events} events in {:.1} s",
        filled.elapsed().as_secs_f64()
    );
    let replay_round = || {
        let started = Instant::now();
        let report = loop_store::replay(store.as_ref(), None).expect("replay");
        assert_eq!(report.events, events);
        started.elapsed()
    };
    let raw_read = || {
        let started = Instant::now();
        assert_eq!(raw.read_decode(), events);
        started.elapsed()
    };
    paired(
        "postgres replay store vs raw read+decode",
        events,
        if timed("replay") { rounds } else { 0 },
        replay_round,
        raw_read,
    );

    if !timed("rebuild") {
        return;
    }
    // rebuild: the log grown with runs of 100 events, appended 100 at a time from 16 threads
    // (as the SQLite rebuild bench fills its log), to the size asked.
    let target = bench_size("LOOP_BENCH_PG_REBUILD_EVENTS", 1_000_000, 20_000);
    let missing = target.saturating_sub(events);
    let filled = Instant::now();
    let mut fill = Fill::events(missing, None);
    fill.runs = missing.div_ceil(100);
    fill.events_per_run = 100;
    // Run numbers clear of the ones above.
    fill.first_run = 1_000_000;
    if missing > 0 {
        fill_store(store.as_ref(), fill);
    }
    let events = store.last_seq().expect("last seq").0;
    eprintln!(
        "postgres: grown to {events} events in {:.1} s",
        filled.elapsed().as_secs_f64()
    );
    let rebuild_round = || {
        let started = Instant::now();
        let stats = store.rebuild_projections().expect("rebuild");
        assert_eq!(stats.events, events);
        started.elapsed()
    };
    let raw_read = || {
        let started = Instant::now();
        assert_eq!(raw.read_decode(), events);
        started.elapsed()
    };
    paired(
        "postgres rebuild store vs raw read+decode",
        events,
        if timed("rebuild") { rounds.min(3) } else { 0 },
        rebuild_round,
        raw_read,
    );
}
