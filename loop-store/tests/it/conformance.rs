//! One suite, both backends: every test here runs against a SQLite file and against a real
//! PostgreSQL server (`loop_testkit::postgres`), through `&dyn EventStore` only. "Two nodes"
//! are two stores opened on the same file or database, as two `loopd` processes would be.
//!
//! Without PostgreSQL installed the `postgres_*` tests say they were skipped and why; under
//! `LOOP_REQUIRE_SYSTEM_TESTS` they fail instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use loop_core::event::StepStarted;
use loop_core::projection::{RunView, StepView};
use loop_core::{Command, Event, EventRecord, RunId, RunStatus, Seq, StepId, Version};
use loop_store::{EventStore, PgStore, RunQuery, SqliteStore, StoreError, replay};

use crate::driver::{RunDriver, Script, T0, run_created};
use crate::rng::Rng;

/// Where a test's log lives; `open` gives another store on it (another node).
enum Backing {
    Sqlite(tempfile::TempDir),
    Postgres(loop_testkit::postgres::Postgres),
}

impl Backing {
    fn open(&self) -> Arc<dyn EventStore> {
        match self {
            Backing::Sqlite(dir) => {
                Arc::new(SqliteStore::open(dir.path().join("loop.db")).expect("open SQLite"))
            }
            Backing::Postgres(server) => {
                Arc::new(PgStore::connect(&server.url).expect("connect to PostgreSQL"))
            }
        }
    }
}

fn sqlite() -> Option<Backing> {
    Some(Backing::Sqlite(tempfile::tempdir().expect("temp dir")))
}

fn postgres(test: &str) -> Option<Backing> {
    loop_testkit::postgres::Postgres::start(test).map(Backing::Postgres)
}

/// Tests `<name>::sqlite` and `<name>::postgres`, each running the function `<name>` on a fresh
/// log.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                let backing = super::sqlite().expect("a temp dir");
                super::$name(&backing);
            }

            #[test]
            fn postgres() {
                if let Some(backing) = super::postgres(concat!(stringify!($name), "::postgres")) {
                    super::$name(&backing);
                }
            }
        }
    };
}

fn create(store: &dyn EventStore, seed: u8, ts_ms: i64, name: &str) -> RunDriver {
    let mut run = RunDriver::with_id(RunId::from_parts(T0 as u64 + u64::from(seed), [seed; 10]));
    run.append(
        store,
        ts_ms,
        [Command::Create(run_created(name, "/work/a"))],
    )
    .expect("create the run");
    run
}

fn seqs(records: &[EventRecord]) -> Vec<u64> {
    records.iter().map(|r| r.seq.0).collect()
}

fn appends_number_and_a_stale_version_is_refused(backing: &Backing) {
    let store = backing.open();
    let store = store.as_ref();
    let mut a = create(store, 1, T0, "a");
    let mut b = create(store, 2, T0 + 1, "b");
    a.append(store, T0 + 2, [Command::Start]).expect("start a");
    b.append(store, T0 + 3, [Command::Start]).expect("start b");
    let all = store.read_all(Seq(0), 100).expect("read");
    assert_eq!(seqs(&all), vec![1, 2, 3, 4]);
    assert_eq!(
        store
            .read_run(a.id)
            .expect("read a")
            .iter()
            .map(|r| r.version.0)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    // A writer that missed an append (another node) is refused and writes nothing.
    let stale = store.append(
        a.id,
        Version(1),
        T0 + 4,
        vec![Event::RunPaused(Default::default())],
    );
    match stale {
        Err(StoreError::Conflict {
            expected, actual, ..
        }) => {
            assert_eq!((expected, actual), (Version(1), Version(2)));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // A retry of an append that already succeeded is a conflict too, never a duplicate.
    let again = store.append(
        a.id,
        Version::NONE,
        T0,
        vec![Event::RunCreated(run_created("a", "/work/a"))],
    );
    assert!(
        matches!(again, Err(StoreError::Conflict { .. })),
        "{again:?}"
    );
    assert_eq!(store.last_seq().expect("last seq"), Seq(4));
}
on_both!(appends_number_and_a_stale_version_is_refused);

fn the_stores_own_rules_refuse_and_write_nothing(backing: &Backing) {
    let store = backing.open();
    let store = store.as_ref();
    let id = RunId::from_parts(T0 as u64, [9; 10]);
    let refused = |result: Result<Vec<EventRecord>, StoreError>, why: &str| match result {
        Err(StoreError::InvalidAppend { reason, .. }) => {
            assert!(reason.contains(why), "{reason}")
        }
        other => panic!("expected a refusal ({why}), got {other:?}"),
    };
    refused(store.append(id, Version::NONE, T0, vec![]), "no events");
    refused(
        store.append(
            id,
            Version::NONE,
            T0,
            vec![Event::RunStarted(Default::default())],
        ),
        "RUN_CREATED",
    );
    let step_id = StepId::from_parts(T0 as u64, [7; 10]);
    let start = start_step;
    let mut first = create(store, 3, T0, "first");
    first
        .append(store, T0 + 1, [Command::Start, start(step_id)])
        .expect("the first start of the step");
    let mut second = create(store, 4, T0 + 2, "second");
    second
        .append(store, T0 + 3, [Command::Start])
        .expect("start the second run");
    let last = store.last_seq().expect("last seq");
    refused(
        second.append(store, T0 + 4, [start(step_id)]),
        &format!("step {step_id} was already started by run {}", first.id),
    );
    assert_eq!(store.last_seq().expect("last seq"), last);
    assert_eq!(store.steps(second.id).expect("steps"), vec![]);
}
on_both!(the_stores_own_rules_refuse_and_write_nothing);

/// The first attempt of an implementation step.
fn step_started(step_id: StepId) -> StepStarted {
    StepStarted {
        step_id,
        phase: loop_core::event::Phase::Implementation,
        iteration: 1,
        attempt: 1,
        prompt_path: None,
        resumed: false,
        session_id: None,
        account: None,
    }
}

fn start_step(step_id: StepId) -> Command {
    Command::StartStep(step_started(step_id))
}

/// Runs through random lifecycles; returns their drivers.
pub fn lifecycles(store: &dyn EventStore, seed: u64, runs: usize) -> Vec<RunDriver> {
    let mut rng = Rng::new(seed);
    let mut drivers: Vec<RunDriver> = (0..runs).map(|_| RunDriver::fresh(&mut rng)).collect();
    let mut ts = T0;
    let mut live: Vec<usize> = (0..runs).collect();
    while !live.is_empty() {
        let pick = rng.below(live.len() as u64) as usize;
        let index = live[pick];
        ts += 1;
        match drivers[index]
            .advance(store, &mut rng, ts, Script::Lifecycle, 3)
            .expect("append")
        {
            Some(_) => {}
            None => {
                live.swap_remove(pick);
            }
        }
    }
    drivers
}

fn projections_are_folds_and_survive_a_rebuild(backing: &Backing) {
    let store = backing.open();
    let store = store.as_ref();
    let seed = Rng::seed_from_clock();
    let drivers = lifecycles(store, seed, 12);
    let check = |when: &str| {
        for run in &drivers {
            let events = store.read_run(run.id).expect("read run");
            let folded = RunView::fold(&events).expect("a created run");
            let stored = store.run_view(run.id).expect("view").expect("a row");
            assert_eq!(stored, folded, "seed {seed}, {when}, run {}", run.id);
            assert_eq!(
                store.steps(run.id).expect("steps"),
                StepView::fold(&events),
                "seed {seed}, {when}"
            );
        }
        let listed = store.list_runs(&RunQuery::default()).expect("list");
        assert_eq!(listed.len(), drivers.len(), "{when}");
        assert!(
            listed
                .windows(2)
                .all(|w| (w[0].created_ms, w[0].id) >= (w[1].created_ms, w[1].id)),
            "newest first ({when})"
        );
        // Pages by cursor give every run once.
        let mut paged = Vec::new();
        let mut before = None;
        loop {
            let page = store
                .list_runs(&RunQuery {
                    before,
                    limit: Some(5),
                    ..RunQuery::default()
                })
                .expect("page");
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            paged.extend(page.into_iter().map(|v| v.id));
        }
        assert_eq!(
            paged,
            listed.iter().map(|v| v.id).collect::<Vec<_>>(),
            "{when}"
        );
        for status in [RunStatus::Completed, RunStatus::Failed, RunStatus::Canceled] {
            let only = store
                .list_runs(&RunQuery {
                    status: Some(status),
                    ..RunQuery::default()
                })
                .expect("by status");
            assert!(only.iter().all(|v| v.status == status), "{when}");
            assert_eq!(
                only.len(),
                listed.iter().filter(|v| v.status == status).count(),
                "{when}"
            );
        }
        let one = &listed[0];
        let prefix = &one.id.to_string()[..8];
        let found = store.find_runs(prefix, 10).expect("find by prefix");
        assert!(found.iter().any(|v| v.id == one.id), "{when}");
        let by_name = store.find_runs(&one.name, 50).expect("find by name");
        assert!(by_name.iter().all(|v| v.name == one.name) && !by_name.is_empty());
    };
    check("as appended");
    let stats = store.rebuild_projections().expect("rebuild");
    assert_eq!(stats.runs, drivers.len() as u64);
    assert_eq!(stats.events, store.last_seq().expect("last").0);
    check("after a rebuild");
    let report = replay(store, None).expect("replay");
    assert_eq!(report.differences, vec![]);
}
on_both!(projections_are_folds_and_survive_a_rebuild);

fn reads_page_and_a_runs_reads_cost_only_the_run(backing: &Backing) {
    let store = backing.open();
    let store = store.as_ref();
    let drivers = lifecycles(store, 7, 6);
    let all = store.read_all(Seq(0), usize::MAX).expect("all");
    assert_eq!(seqs(&all), (1..=all.len() as u64).collect::<Vec<_>>());
    let mut paged = Vec::new();
    let mut after = Seq(0);
    loop {
        let page = store.read_all(after, 7).expect("page");
        let Some(last) = page.last() else { break };
        after = last.seq;
        paged.extend(page);
    }
    assert_eq!(paged, all);
    for run in &drivers {
        let mine: Vec<EventRecord> = all.iter().filter(|r| r.run_id == run.id).cloned().collect();
        assert_eq!(store.read_run(run.id).expect("read run"), mine);
        let middle = mine[mine.len() / 2].seq;
        let later: Vec<EventRecord> = mine.iter().filter(|r| r.seq > middle).cloned().collect();
        assert_eq!(
            store
                .read_run_after(run.id, middle, usize::MAX)
                .expect("after"),
            later
        );
    }
    assert!(
        store
            .read_run(RunId::from_parts(1, [0; 10]))
            .expect("unknown")
            .is_empty()
    );
    assert_eq!(
        store
            .run_view(RunId::from_parts(1, [0; 10]))
            .expect("unknown"),
        None
    );
}
on_both!(reads_page_and_a_runs_reads_cost_only_the_run);

/// Two nodes append at once; a subscriber on each sees every seq once, in order, with no gap,
/// including events that the other node committed late.
fn two_nodes_appending_at_once_reach_every_subscriber_once_in_order(backing: &Backing) {
    const WRITERS: u64 = 4;
    const APPENDS: usize = 40;
    let nodes = [backing.open(), backing.open()];
    let seed = Rng::seed_from_clock();
    let start = Arc::new(Barrier::new(WRITERS as usize + 1));
    let mut subscriptions: Vec<_> = nodes
        .iter()
        .map(|node| node.subscribe(Seq(0)).expect("subscribe"))
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&nodes[(w % 2) as usize]);
            let start = Arc::clone(&start);
            let mut rng = Rng::new(seed ^ (w + 1));
            thread::spawn(move || {
                let mut run = RunDriver::fresh(&mut rng);
                start.wait();
                for i in 0..APPENDS {
                    let ts = T0 + i as i64;
                    match run.advance(store.as_ref(), &mut rng, ts, Script::Endless, 3) {
                        Ok(_) => {}
                        Err(error) => panic!("seed {seed}: writer {w}: {error}"),
                    }
                }
            })
        })
        .collect();
    start.wait();
    let target = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = subscriptions
        .drain(..)
        .map(|mut sub| {
            let target = Arc::clone(&target);
            thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut got: Vec<EventRecord> = Vec::new();
                loop {
                    let t = target.load(Ordering::SeqCst);
                    if t != 0 && got.last().is_some_and(|r| r.seq.0 >= t) {
                        return got;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "stuck after {:?}",
                        got.last().map(|r| r.seq)
                    );
                    if let Some(record) = sub.recv_timeout(Duration::from_millis(50)).expect("sub")
                    {
                        got.push(record);
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer");
    }
    let last = nodes[0].last_seq().expect("last seq").0;
    assert_eq!(nodes[1].last_seq().expect("last seq").0, last);
    target.store(last, Ordering::SeqCst);
    let everything = nodes[0].read_all(Seq(0), usize::MAX).expect("read");
    assert_eq!(
        seqs(&everything),
        (1..=last).collect::<Vec<_>>(),
        "seed {seed}"
    );
    for (node, reader) in readers.into_iter().enumerate() {
        let got = reader.join().expect("reader");
        assert_eq!(
            got, everything,
            "seed {seed}: the subscriber on node {node}"
        );
    }
    let report = replay(nodes[1].as_ref(), None).expect("replay");
    assert_eq!(report.differences, vec![]);
}
on_both!(two_nodes_appending_at_once_reach_every_subscriber_once_in_order);

/// Appenders at once, with every other append refused (a stale version, or a step another run
/// started), on two nodes: whatever group each append lands in, a refused one writes nothing
/// and the rest of its group commits, numbered with no gap.
fn refusals_inside_a_group_leave_the_rest_of_it(backing: &Backing) {
    const WRITERS: u64 = 8;
    const ROUNDS: usize = 12;
    let nodes = [backing.open(), backing.open()];
    let seed = Rng::seed_from_clock();
    let taken = StepId::from_parts(T0 as u64, [0x5A; 10]);
    let mut owner = create(nodes[0].as_ref(), 200, T0, "owner");
    owner
        .append(
            nodes[0].as_ref(),
            T0 + 1,
            [Command::Start, start_step(taken)],
        )
        .expect("the first start of the step");
    let start = Arc::new(Barrier::new(WRITERS as usize));
    let accepted = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&nodes[(w % 2) as usize]);
            let (start, accepted) = (Arc::clone(&start), Arc::clone(&accepted));
            let mut rng = Rng::new(seed ^ (w + 1));
            thread::spawn(move || {
                let store = store.as_ref();
                let mut run = create(store, w as u8 + 1, T0, &format!("w{w}"));
                run.append(store, T0 + 1, [Command::Start]).expect("start");
                accepted.fetch_add(run.version().0, Ordering::SeqCst);
                start.wait();
                for i in 0..ROUNDS {
                    let ts = T0 + 2 + i as i64;
                    let events = run.random_events(&mut rng, ts, Script::Endless, 3);
                    match i % 3 {
                        0 => {
                            let stale = Version(run.version().0 - 1);
                            let refused = store.append(run.id, stale, ts, events);
                            assert!(
                                matches!(refused, Err(StoreError::Conflict { .. })),
                                "seed {seed}: {refused:?}"
                            );
                        }
                        1 => {
                            let started = Event::StepStarted(step_started(taken));
                            let refused = store.append(run.id, run.version(), ts, vec![started]);
                            assert!(
                                matches!(&refused, Err(StoreError::InvalidAppend { reason, .. })
                                    if reason.contains("already started")),
                                "seed {seed}: {refused:?}"
                            );
                        }
                        _ => {
                            let records = run
                                .append_events(store, ts, events)
                                .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
                            accepted.fetch_add(records.len() as u64, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer");
    }
    let everything = nodes[1].read_all(Seq(0), usize::MAX).expect("read");
    assert_eq!(
        everything.len() as u64,
        owner.version().0 + accepted.load(Ordering::SeqCst),
        "seed {seed}: every accepted event and no refused one"
    );
    let last = everything.last().map_or(0, |r| r.seq.0);
    assert_eq!(
        seqs(&everything),
        (1..=last).collect::<Vec<_>>(),
        "seed {seed}"
    );
    let report = replay(nodes[0].as_ref(), None).expect("replay");
    assert_eq!(report.differences, vec![], "seed {seed}");
}
on_both!(refusals_inside_a_group_leave_the_rest_of_it);

/// A node's heartbeat is kept and aged; a second beat updates it; a node that leaves holds no
/// lease; a node that never beat is not listed.
fn heartbeats_are_kept_aged_and_ended_by_leaving(backing: &Backing) {
    let store = backing.open();
    assert_eq!(store.nodes().expect("nodes"), vec![]);
    let beat = |runs| loop_store::NodeBeat {
        node_id: "node-a".to_owned(),
        name: "a".to_owned(),
        address: "http://127.0.0.1:1".to_owned(),
        capacity: 3,
        runs,
        lease_ms: 60_000,
        proof: format!("proof-{runs}"),
    };
    store.beat(&beat(0)).expect("beat");
    store.beat(&beat(2)).expect("beat again");
    let nodes = store.nodes().expect("nodes");
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(nodes[0].beat, beat(2));
    assert!(nodes[0].holds_lease(), "{nodes:?}");
    assert!(nodes[0].age_ms < 60_000 && nodes[0].heartbeat_ms >= nodes[0].started_ms);
    store.leave("node-a").expect("leave");
    let nodes = store.nodes().expect("nodes");
    assert!(nodes[0].left && !nodes[0].holds_lease(), "{nodes:?}");
    // Beating again comes back.
    store.beat(&beat(0)).expect("beat after leaving");
    assert!(store.nodes().expect("nodes")[0].holds_lease());
}
on_both!(heartbeats_are_kept_aged_and_ended_by_leaving);

/// A run renamed by its naming call is still found by the name it was created with (the name
/// `loopctl run` printed), and by the new one; another run's name never matches it.
fn a_run_is_found_by_every_name_it_has_had(backing: &Backing) {
    let store = backing.open();
    let mut renamed = create(store.as_ref(), 1, T0, "f-7");
    renamed
        .append(
            store.as_ref(),
            T0 + 1,
            [Command::Name(loop_core::event::RunNamed {
                name: "swift-owl".to_owned(),
                name_source: loop_core::event::NameSource::Haiku,
                paid: Default::default(),
            })],
        )
        .expect("rename");
    let other = create(store.as_ref(), 2, T0 + 2, "f-8");
    for name in ["f-7", "swift-owl"] {
        let found: Vec<RunId> = store
            .find_runs(name, 10)
            .expect("find by name")
            .iter()
            .map(|v| v.id)
            .collect();
        assert_eq!(found, vec![renamed.id], "{name}");
    }
    let found = store.find_runs("f-8", 10).expect("find by name");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, other.id);
    assert_eq!(found[0].name, "f-8");
    // After a rebuild, the same.
    store.rebuild_projections().expect("rebuild");
    assert_eq!(
        store.find_runs("f-7", 10).expect("find")[0].name,
        "swift-owl"
    );
}
on_both!(a_run_is_found_by_every_name_it_has_had);
