//! Shared fixtures of the benchmarks: realistic events, stores filled with them, and the raw
//! rusqlite baseline every store figure is compared with.
//!
//! Every benchmark works on files in a temporary directory on disk (`LOOP_BENCH_DIR`, else the
//! system's temporary directory), in WAL mode with `synchronous=FULL`, the store's own settings.

pub mod bare;
pub mod daemon;
pub mod scratch;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use loop_core::event::{
    Phase, RunCreated, RunStarted, StepFinished, StepStarted, StepStatus, Tokens,
    VerificationCommand, WorktreeCreated,
};
use loop_core::{Event, EventRecord, RunId, StepId, Version};
use loop_store::{EventStore, SqliteStore};
use rusqlite::{Connection, TransactionBehavior, params};

/// The time stamped on every event (2026-11-25T14:00:00Z).
pub const TS_MS: i64 = 1_795_615_200_000;

/// The events table exactly as the store declares it (`loop-store/src/sqlite/schema.rs`).
pub const RAW_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS events (
    seq      INTEGER PRIMARY KEY,
    run_id   TEXT    NOT NULL,
    version  INTEGER NOT NULL,
    type     TEXT    NOT NULL,
    ts_ms    INTEGER NOT NULL,
    schema   INTEGER NOT NULL,
    payload  TEXT    NOT NULL,
    UNIQUE (run_id, version)
)";

/// The raw baseline's insert: the same row the store writes for an event.
pub const RAW_INSERT: &str =
    "INSERT INTO events (seq, run_id, version, type, ts_ms, schema, payload)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// The raw baseline's full read, in log order.
pub const RAW_SELECT: &str =
    "SELECT seq, run_id, version, type, ts_ms, schema, payload FROM events ORDER BY seq";

/// A temporary directory on disk for one benchmark's databases.
pub fn bench_dir() -> tempfile::TempDir {
    let parent = std::env::var_os("LOOP_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    tempfile::Builder::new()
        .prefix("loop-bench-")
        .tempdir_in(parent)
        .expect("create a temporary directory for the benchmark")
}

/// A size taken from the environment variable `name`, else `default`.
pub fn env_size(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .replace(['_', ','], "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
        Err(_) => default,
    }
}

/// A connection of the raw baseline: the store's pragmas (WAL, `synchronous=FULL`,
/// `foreign_keys`, a busy timeout) on a file holding only the events table.
pub fn raw_connection(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open the raw database");
    conn.busy_timeout(Duration::from_secs(60))
        .expect("set the busy timeout");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("switch to WAL");
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;")
        .expect("set pragmas");
    conn.execute_batch(RAW_SCHEMA)
        .expect("create the events table");
    conn
}

/// One events row, encoded the way the store encodes it.
#[derive(Clone, Debug)]
pub struct RawRow {
    pub run_id: String,
    pub version: i64,
    pub event_type: &'static str,
    pub ts_ms: i64,
    pub schema: u32,
    pub payload: String,
}

impl RawRow {
    pub fn new(run_id: RunId, version: Version, event: &Event) -> RawRow {
        RawRow {
            run_id: run_id.to_string(),
            version: version.0 as i64,
            event_type: event.event_type().as_str(),
            ts_ms: TS_MS,
            schema: loop_core::event::SCHEMA,
            payload: event.payload_json(),
        }
    }
}

/// Inserts `rows` in one `BEGIN IMMEDIATE … COMMIT` (one fsync), `seq` chosen by SQLite when
/// `first_seq` is `None`.
pub fn raw_insert_commit(conn: &mut Connection, first_seq: Option<i64>, rows: &[RawRow]) {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .expect("begin");
    {
        let mut stmt = tx.prepare_cached(RAW_INSERT).expect("prepare the insert");
        for (i, row) in rows.iter().enumerate() {
            stmt.execute(params![
                first_seq.map(|seq| seq + i as i64),
                row.run_id,
                row.version,
                row.event_type,
                row.ts_ms,
                row.schema,
                row.payload,
            ])
            .expect("insert");
        }
    }
    tx.commit().expect("commit");
}

/// Reads every row in log order and decodes each payload to a `serde_json::Value`: the floor
/// the store's reads are measured against. Returns how many rows it read.
pub fn raw_read_decode(conn: &Connection) -> u64 {
    let mut stmt = conn.prepare_cached(RAW_SELECT).expect("prepare the select");
    let mut rows = stmt.query([]).expect("select");
    let mut count = 0u64;
    while let Some(row) = rows.next().expect("read a row") {
        let seq: i64 = row.get(0).expect("seq");
        let run_id: String = row.get(1).expect("run_id");
        let version: i64 = row.get(2).expect("version");
        let event_type: String = row.get(3).expect("type");
        let ts_ms: i64 = row.get(4).expect("ts_ms");
        let schema: i64 = row.get(5).expect("schema");
        let payload: String = row.get(6).expect("payload");
        let value: serde_json::Value = serde_json::from_str(&payload).expect("payload is JSON");
        std::hint::black_box((seq, run_id, version, event_type, ts_ms, schema, value));
        count += 1;
    }
    count
}

fn entropy(a: u64, b: u64) -> [u8; 10] {
    let mut bytes = [0u8; 10];
    bytes[..5].copy_from_slice(&a.to_be_bytes()[3..]);
    bytes[5..].copy_from_slice(&b.to_be_bytes()[3..]);
    bytes
}

/// The id of run number `n` of a benchmark.
pub fn run_id(n: u64) -> RunId {
    RunId::from_parts(TS_MS as u64 + n, entropy(n, 0))
}

/// The events of one run as the runtime writes them: `RUN_CREATED`, `RUN_STARTED`,
/// `WORKTREE_CREATED`, then iterations of an implementation step, a review step and a
/// verification step with one command, forever. About 86% of the events are `STEP_STARTED` or
/// `STEP_FINISHED`; every sequence is legal for the domain.
#[derive(Clone, Debug)]
pub struct RunScript {
    number: u64,
    run_id: RunId,
    emitted: u64,
    steps: u64,
    open: Option<(StepId, Phase)>,
}

const PREFIX: u64 = 3;
const CYCLE: u64 = 7;

impl RunScript {
    pub fn new(number: u64) -> RunScript {
        RunScript {
            number,
            run_id: run_id(number),
            emitted: 0,
            steps: 0,
            open: None,
        }
    }

    pub fn run_id(&self) -> RunId {
        self.run_id
    }

    /// The run's version: how many events it has emitted.
    pub fn version(&self) -> Version {
        Version(self.emitted)
    }

    /// The next `n` events.
    pub fn take(&mut self, n: usize) -> Vec<Event> {
        (0..n).map(|_| self.next_event()).collect()
    }

    /// The next event; the run's version goes up by one.
    pub fn next_event(&mut self) -> Event {
        let index = self.emitted;
        self.emitted += 1;
        match index {
            0 => self.created(),
            1 => RunStarted {}.into(),
            2 => WorktreeCreated {
                provider: "git-worktree".into(),
                path: format!("{}/.loop/worktrees/{}", self.workspace(), self.slug()),
                base_branch: "main".to_owned(),
                run_branch: format!("loop/{}", self.slug()),
                reused: false,
            }
            .into(),
            _ => {
                let at = (index - PREFIX) % CYCLE;
                let iteration = ((index - PREFIX) / CYCLE + 1) as u32;
                match at {
                    0 => self.start(Phase::Implementation, iteration),
                    1 => self.finish(iteration),
                    2 => self.start(Phase::Review, iteration),
                    3 => self.finish(iteration),
                    4 => self.start(Phase::Verification, iteration),
                    5 => {
                        let (step_id, _) = self.open.expect("a verification step is open");
                        VerificationCommand {
                            step_id,
                            command: "cargo test --workspace --all-targets".to_owned(),
                            exit_code: Some(0),
                            duration_ms: 41_873,
                        }
                        .into()
                    }
                    _ => self.finish(iteration),
                }
            }
        }
    }

    fn slug(&self) -> String {
        format!("2026-11-25-add-rate-limiter-{:05}", self.number)
    }

    fn workspace(&self) -> String {
        format!("/home/dev/src/acme-api-{}", self.number % 8)
    }

    fn created(&self) -> Event {
        let config: BTreeMap<String, String> = [
            ("agent", "claude"),
            ("model", "claude-sonnet-4-5"),
            ("max_iterations", "50"),
            ("base_branch", "main"),
            ("merge_target_branch", "main"),
            ("merge_strategy", "squash"),
            ("reviewer", "true"),
            (
                "verify_commands",
                "cargo fmt --check && cargo test --workspace",
            ),
            ("step_timeout_s", "3600"),
            ("budget_usd", "25.00"),
            ("worktree_provider", "git-worktree"),
            ("watchdog", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        RunCreated {
            name: format!("add-rate-limiter-{:05}", self.number),
            name_source: loop_core::event::NameSource::SpecSlug,
            workspace_root: self.workspace(),
            spec_path: format!("{}/specs/rate-limiter.md", self.workspace()),
            plan_path: format!("{}/specs/rate-limiter.plan.md", self.workspace()),
            config,
            prompt_template: Default::default(),
            tasks_done: None,
            tasks_total: None,
        }
        .into()
    }

    fn start(&mut self, phase: Phase, iteration: u32) -> Event {
        self.steps += 1;
        let step_id =
            StepId::from_parts(TS_MS as u64 + self.steps, entropy(self.number, self.steps));
        self.open = Some((step_id, phase));
        StepStarted {
            step_id,
            phase,
            iteration,
            attempt: 1,
            prompt_path: Some(format!(
                "{}/.loop/runs/{}/prompts/{:04}-{phase:?}.md",
                self.workspace(),
                self.slug(),
                self.steps
            )),
            resumed: Default::default(),
            session_id: Default::default(),
            account: None,
        }
        .into()
    }

    fn finish(&mut self, iteration: u32) -> Event {
        let (step_id, phase) = self.open.take().expect("a step is open");
        StepFinished {
            step_id,
            phase,
            status: StepStatus::Succeeded,
            exit_code: Some(0),
            duration_ms: 95_000 + self.steps * 137 % 60_000,
            output_path: Some(format!(
                "{}/.loop/runs/{}/steps/{:04}-{phase:?}/output.jsonl",
                self.workspace(),
                self.slug(),
                self.steps
            )),
            output_bytes: 48_213 + self.steps * 977 % 30_000,
            output_lines: 312 + self.steps % 200,
            tokens: Some(Tokens {
                input: 182_344 + self.steps * 31,
                output: 9_312 + self.steps * 7,
                cached: Default::default(),
                cache_write: Default::default(),
                reasoning: Default::default(),
            }),
            cost_usd: Some(0.4127),
            tasks_done: Some(iteration.min(12)),
            tasks_total: Some(12),
            message: Some(match phase {
                Phase::Review => {
                    "reviewer: the limiter must reset per key, not globally".to_owned()
                }
                _ => format!(
                    "iteration {iteration}: {} of 12 plan tasks done",
                    iteration.min(12)
                ),
            }),
            head_commit: Some(format!("{:040x}", self.number << 32 | self.steps)),
            plan_sha256: Some(format!(
                "{:064x}",
                u128::from(iteration) * 0x9e37_79b9_7f4a_7c15
            )),
            answer_sha256: None,
            agent: Default::default(),
            account: None,
            cost_estimated: false,
        }
        .into()
    }
}

/// How to fill a store for a benchmark.
#[derive(Clone, Copy, Debug)]
pub struct Fill {
    pub runs: u64,
    pub events_per_run: u64,
    /// Events per `append` call (the last append of a run may have fewer).
    pub events_per_append: u64,
    /// Appending threads; each takes every `threads`-th run and appends to its runs in turn, so
    /// the log interleaves runs as a busy daemon's does and the writer commits in groups.
    pub threads: u64,
    /// The number of the first run ([`RunScript::new`]), to add runs to a log that has some.
    pub first_run: u64,
}

impl Fill {
    /// `events` over `runs`, 100 events a run when `runs` is `None`.
    pub fn events(events: u64, runs: Option<u64>) -> Fill {
        let runs = runs.unwrap_or((events / 100).max(1));
        Fill {
            runs,
            events_per_run: events / runs,
            events_per_append: 100,
            threads: 16,
            first_run: 0,
        }
    }

    pub fn total(&self) -> u64 {
        self.runs * self.events_per_run
    }
}

/// Fills `store` through its own `append` as `fill` says; returns how many events it appended.
pub fn fill_store<S: EventStore + Sync + ?Sized>(store: &S, fill: Fill) -> u64 {
    let threads = fill.threads.clamp(1, fill.runs.max(1));
    std::thread::scope(|scope| {
        for t in 0..threads {
            scope.spawn(move || {
                let mut scripts: Vec<RunScript> = (fill.first_run + t..fill.first_run + fill.runs)
                    .step_by(threads as usize)
                    .map(RunScript::new)
                    .collect();
                let mut left = fill.events_per_run;
                while left > 0 {
                    let n = left.min(fill.events_per_append);
                    for script in &mut scripts {
                        let expected = script.version();
                        let events = script.take(n as usize);
                        store
                            .append(script.run_id(), expected, TS_MS, events)
                            .expect("append while filling the store");
                    }
                    left -= n;
                }
            });
        }
    });
    fill.total()
}

/// What replay does: every event of the log, read in pages of 8192 and folded into one
/// `RunView` per run. Returns how many events it folded and how many runs it saw.
pub fn fold_from_store(store: &SqliteStore) -> (u64, usize) {
    use loop_core::projection::RunView;
    let mut views: std::collections::HashMap<RunId, RunView> = std::collections::HashMap::new();
    let mut after = loop_core::Seq(0);
    let mut events = 0u64;
    loop {
        let page: Vec<EventRecord> = store.read_all(after, 8192).expect("read_all");
        let Some(last) = page.last() else { break };
        after = last.seq;
        for record in &page {
            events += 1;
            match views.get_mut(&record.run_id) {
                Some(view) => view.apply(record),
                None => {
                    if let Some(view) = RunView::created(record) {
                        views.insert(record.run_id, view);
                    }
                }
            }
        }
    }
    (events, views.len())
}

/// Rounds of [`paired`] comparison: `LOOP_BENCH_PAIRS` (default 7; 0 skips them).
pub fn pair_rounds() -> usize {
    bench_size("LOOP_BENCH_PAIRS", 7, 0) as usize
}

/// Times `store` and `raw` alternately, `rounds` times each, and prints the median of each and
/// the median of the per-round ratios. On a shared, noisy machine the ratio of two runs made a
/// moment apart is steadier than that of two criterion benchmarks made a minute apart.
/// Returns the median ratio `store / raw` (NaN with no rounds).
pub fn paired(
    label: &str,
    elements: u64,
    rounds: usize,
    mut store: impl FnMut() -> Duration,
    mut raw: impl FnMut() -> Duration,
) -> f64 {
    if rounds == 0 {
        return f64::NAN;
    }
    let mut pairs: Vec<(Duration, Duration)> = Vec::with_capacity(rounds);
    for round in 0..rounds {
        // Alternate which goes first, so neither always runs on a warmer cache.
        let pair = if round % 2 == 0 {
            let s = store();
            (s, raw())
        } else {
            let r = raw();
            (store(), r)
        };
        pairs.push(pair);
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let store_s = median(pairs.iter().map(|p| p.0.as_secs_f64()).collect());
    let raw_s = median(pairs.iter().map(|p| p.1.as_secs_f64()).collect());
    let ratio = median(
        pairs
            .iter()
            .map(|p| p.0.as_secs_f64() / p.1.as_secs_f64())
            .collect(),
    );
    let ratios: Vec<f64> = pairs
        .iter()
        .map(|p| p.0.as_secs_f64() / p.1.as_secs_f64())
        .collect();
    let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let high = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let per = |s: f64| elements as f64 / s;
    eprintln!(
        "paired {label}: {rounds} rounds of {elements} events; store median {:.3} ms \
         ({:.0} events/s), raw median {:.3} ms ({:.0} events/s), median ratio store/raw {ratio:.2} \
         (range {low:.2}–{high:.2})",
        store_s * 1e3,
        per(store_s),
        raw_s * 1e3,
        per(raw_s),
    );
    row(&[
        label,
        &format!("{elements}"),
        &format!("{:.0}/s", per(store_s)),
        &format!("{:.0}/s", per(raw_s)),
        &format!("{ratio:.2} ({low:.2}–{high:.2}, {rounds} rounds)"),
    ]);
    ratio
}

/// One row of a BENCHMARKS.md table on stdout (`| a | b |`): `benches/regenerate.sh` gathers
/// these lines from every benchmark's output into the document's generated section.
pub fn row(cells: &[&str]) {
    println!("| {} |", cells.join(" | "));
}

/// Whether the benchmark binary runs as a benchmark (`cargo bench`, which passes `--bench`)
/// rather than as a quick test of itself (`cargo test --all-targets`), which gets small sizes
/// and no paired rounds.
pub fn benchmarking() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// `env_size(name, default)` when benchmarking, else `quick`.
pub fn bench_size(name: &str, default: u64, quick: u64) -> u64 {
    if benchmarking() {
        env_size(name, default)
    } else {
        quick
    }
}

/// Writes `runs` finished runs into the log at `db`: each the events of a real run with 3
/// iterations (24 events, [`RunScript`]) then `RUN_COMPLETED`, appended in one go per run from
/// `threads` threads. The log a listing or a board is measured against.
pub fn fill_finished_runs(db: &Path, runs: u64, threads: u64) {
    use loop_core::event::{ExitReason, RunCompleted};
    let store = SqliteStore::open(db).expect("open the log");
    std::thread::scope(|scope| {
        for t in 0..threads {
            let store = &store;
            scope.spawn(move || {
                for n in (t..runs).step_by(threads as usize) {
                    let mut script = RunScript::new(n);
                    let mut events = script.take(24);
                    events.push(
                        RunCompleted {
                            exit_reason: ExitReason::CompletePlan,
                            completed_iteration: 3,
                        }
                        .into(),
                    );
                    store
                        .append(script.run_id(), Version(0), TS_MS, events)
                        .expect("append a run");
                }
            });
        }
    });
}
