//! Kill -9 in the middle of appends: every append that returned is there after reopening, no
//! append is half there, `seq` has no gap and the projections equal a fresh fold.
//!
//! The appender is this test binary itself, re-run as a child on [`crash_child_appender`] with
//! the database path in [`CHILD_DB`]. It prints `intent <run> <expected> <n> <ts>` before each
//! append and `acked <run> <last_version> <last_seq>` once the append has returned.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::thread;
use std::time::Duration;

use loop_core::{Command, RunId, RunStatus, Seq, Version};
use loop_store::{EventStore, RunQuery, SqliteStore, replay};

use crate::driver::{RunDriver, Script, T0};
use crate::group_commit::{read_gap_free, runs_contiguous};
use crate::rng::Rng;

/// Set in the child: the database to append to.
const CHILD_DB: &str = "LOOP_STORE_CRASH_CHILD_DB";
/// Set in the child: which round it is, so its timestamps differ from earlier rounds'.
const CHILD_ROUND: &str = "LOOP_STORE_CRASH_CHILD_ROUND";
/// The child's test, as libtest names it.
const CHILD_TEST: &str = "crash::crash_child_appender";
const APPENDERS: u64 = 4;

/// The child: appends forever until killed. Not a test of its own: the crash test runs it.
#[test]
#[ignore = "the crash test's child process, run by it with --ignored"]
fn crash_child_appender() {
    let Some(db) = std::env::var_os(CHILD_DB) else {
        panic!("run by the crash test, which sets {CHILD_DB}");
    };
    let round: i64 = std::env::var(CHILD_ROUND)
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let store = SqliteStore::open(&db).unwrap_or_else(|e| die(&format!("open: {e}")));
    // Every append gets its own time, so a half-written one would show in the log.
    let clock = Arc::new(AtomicI64::new(T0 + round * 1_000_000_000));

    // Runs an earlier round left going carry on from their stored version.
    let unfinished: Vec<RunId> = store
        .list_runs(&RunQuery::default())
        .unwrap_or_else(|e| die(&format!("list: {e}")))
        .into_iter()
        .filter(|view| {
            matches!(
                view.status,
                RunStatus::Pending | RunStatus::Running | RunStatus::Paused | RunStatus::Failed
            )
        })
        .map(|view| view.id)
        .collect();
    let seed = Rng::seed_from_clock();
    let appenders: Vec<_> = (0..APPENDERS)
        .map(|a| {
            let mine: Vec<RunId> = unfinished
                .iter()
                .copied()
                .filter(|id| id.as_uuid().as_u128() % u128::from(APPENDERS) == u128::from(a))
                .collect();
            let (store, clock) = (store.clone(), Arc::clone(&clock));
            thread::spawn(move || append_forever(&store, &clock, Rng::new(seed ^ a), mine))
        })
        .collect();
    for appender in appenders {
        let _ = appender.join();
    }
    die("an appender stopped");
}

fn die(message: &str) -> ! {
    eprintln!("crash child: {message}");
    std::process::exit(3);
}

fn append_forever(store: &SqliteStore, clock: &AtomicI64, mut rng: Rng, mut resume: Vec<RunId>) {
    loop {
        let mut run = match resume.pop() {
            Some(id) => RunDriver::resume(store, id),
            None => RunDriver::fresh(&mut rng),
        };
        if run.state.open_step().is_some() {
            // What the runtime does with a step the crash interrupted.
            let ts = clock.fetch_add(1, Ordering::SeqCst);
            let events = run.events([Command::Recover { at_ms: ts }], ts);
            append_reporting(store, &mut run, ts, events);
        }
        loop {
            let ts = clock.fetch_add(1, Ordering::SeqCst);
            let events = run.random_events(&mut rng, ts, Script::Lifecycle, 4);
            if events.is_empty() {
                break; // the run is over: start another
            }
            append_reporting(store, &mut run, ts, events);
        }
    }
}

fn append_reporting(
    store: &SqliteStore,
    run: &mut RunDriver,
    ts: i64,
    events: Vec<loop_core::Event>,
) {
    let say = |line: String| {
        let mut out = std::io::stdout().lock();
        // One write per line: a line is either whole in the pipe or not there at all.
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    };
    say(format!(
        "intent {} {} {} {ts}\n",
        run.id,
        run.version().0,
        events.len()
    ));
    let records = run
        .append_events(store, ts, events)
        .unwrap_or_else(|e| die(&format!("append to {}: {e}", run.id)));
    let last = records.last().expect("an append returns its records");
    say(format!(
        "acked {} {} {}\n",
        run.id, last.version.0, last.seq.0
    ));
}

#[derive(Debug)]
struct Intent {
    run: RunId,
    expected: u64,
    events: u64,
    ts: i64,
}

#[derive(Debug)]
struct Acked {
    run: RunId,
    version: u64,
    seq: u64,
}

/// The child's complete lines (a line cut by the kill has no newline and is dropped).
fn read_lines(stdout: impl Read) -> (Vec<Intent>, Vec<Acked>) {
    let mut reader = BufReader::new(stdout);
    let (mut intents, mut acked) = (Vec::new(), Vec::new());
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.last() != Some(&b'\n') => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let fields: Vec<&str> = text.split_whitespace().collect();
        match fields.as_slice() {
            ["intent", run, expected, events, ts] => intents.push(Intent {
                run: run.parse().expect("run id"),
                expected: expected.parse().expect("expected version"),
                events: events.parse().expect("event count"),
                ts: ts.parse().expect("ts"),
            }),
            ["acked", run, version, seq] => acked.push(Acked {
                run: run.parse().expect("run id"),
                version: version.parse().expect("version"),
                seq: seq.parse().expect("seq"),
            }),
            _ => {} // libtest's own output
        }
    }
    (intents, acked)
}

#[test]
fn acknowledged_appends_survive_sigkill_at_random_moments() {
    const ROUNDS: i64 = 5;
    let seed = Rng::seed_from_clock();
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("loop.db");
    let exe = std::env::current_exe().expect("the test binary");
    let (mut intents, mut acked) = (Vec::new(), Vec::new());

    for round in 0..ROUNDS {
        let mut child = Process::new(&exe)
            .args([
                "--exact",
                CHILD_TEST,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DB, &db)
            .env(CHILD_ROUND, round.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the appender");
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let lines = thread::spawn(move || read_lines(stdout));
        let errors = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });

        thread::sleep(Duration::from_millis(rng.between(50, 400)));
        let exited = child.try_wait().expect("poll the appender");
        child.kill().expect("SIGKILL the appender");
        child.wait().expect("reap the appender");
        let (round_intents, round_acked) = lines.join().expect("line reader");
        let errors = errors.join().expect("stderr reader");
        assert!(
            exited.is_none(),
            "round {round}: the appender exited by itself ({exited:?}): {errors}"
        );
        intents.extend(round_intents);
        acked.extend(round_acked);
    }
    assert!(
        !acked.is_empty(),
        "no append was acknowledged in {ROUNDS} rounds"
    );

    let store = SqliteStore::open(&db).expect("reopen after the crashes");
    // Every event decodes (read_all would fail otherwise) and seq runs 1..=max without gap.
    let all = read_gap_free(&store);
    let runs = runs_contiguous(&all);
    for ack in &acked {
        let record = all
            .get(ack.seq as usize - 1)
            .unwrap_or_else(|| panic!("seed {seed}: acknowledged {ack:?} is lost"));
        assert_eq!(
            (record.run_id, record.version),
            (ack.run, Version(ack.version)),
            "seed {seed}: acknowledged {ack:?} holds something else"
        );
    }
    // An append is all there or not there at all: its events share a time no other has.
    for intent in &intents {
        let by_ts: BTreeMap<Version, i64> = runs
            .get(&intent.run)
            .map(|records| {
                records
                    .iter()
                    .filter(|r| r.ts_ms == intent.ts)
                    .map(|r| (r.version, r.ts_ms))
                    .collect()
            })
            .unwrap_or_default();
        let whole: Vec<Version> = (1..=intent.events)
            .map(|i| Version(intent.expected + i))
            .collect();
        let present: Vec<Version> = by_ts.into_keys().collect();
        assert!(
            present.is_empty() || present == whole,
            "seed {seed}: torn append {intent:?}: versions {present:?} of it are stored"
        );
    }
    println!(
        "{} appends acknowledged, {} intended, {} events in {} runs",
        acked.len(),
        intents.len(),
        all.len(),
        runs.len()
    );
    let report = replay(&store, None).expect("replay after the crashes");
    assert_eq!(report.differences, vec![], "seed {seed}");
    assert_eq!(
        store.last_seq().expect("last seq"),
        Seq(all.len() as u64),
        "seed {seed}"
    );
}
