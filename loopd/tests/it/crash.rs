//! Kill -9 the daemon at random moments while runs are under way, restart it, and check that
//! every run still ends, the log has no gap, no step finished twice, and every projection is a
//! fresh fold of the log.

use std::time::{Duration, Instant};

use loop_core::event::{Event, StepStatus};
use loop_store::{EventStore, SqliteStore};
use serde_json::{Value, json};

use crate::support::{client, repo, run_body, start_daemon};

#[test]
fn runs_survive_the_daemon_being_killed_at_random_moments() {
    let seed = std::env::var("LOOP_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_u64);
    // Seeded, so a failure can be replayed from its seed.
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let runs = 6;
    let repos: Vec<_> = (0..runs)
        .map(|n| {
            let root = dir.path().join(format!("ws{n}"));
            std::fs::create_dir_all(&root).expect("dir");
            repo(&root, 2)
        })
        .collect();

    let client = client();
    let mut ids: Vec<String> = Vec::new();
    for round in 0..4 {
        let mut daemon = start_daemon(&data, &["--max-concurrency", "6"], &[]);
        if round == 0 {
            for repo in &repos {
                let body = run_body(repo, "sleepy.sh", json!({"verify_cmds": "true"}));
                let created: Value = client
                    .post(daemon.url("/runs"))
                    .json(&body)
                    .send()
                    .expect("create")
                    .json()
                    .expect("json");
                ids.push(crate::support::run_id(&created));
            }
        }
        std::thread::sleep(Duration::from_millis(150 + rng.u64(..600)));
        daemon.kill();
    }

    // A last daemon lets every run finish.
    let mut daemon = start_daemon(&data, &["--max-concurrency", "6"], &[]);
    let deadline = Instant::now() + Duration::from_secs(90);
    for id in &ids {
        loop {
            let run: Value = client
                .get(daemon.url(&format!("/runs/{id}")))
                .send()
                .expect("get")
                .json()
                .expect("json");
            if ["COMPLETED", "FAILED", "CANCELED"]
                .contains(&run["run"]["status"].as_str().unwrap_or(""))
            {
                assert_eq!(run["run"]["status"], "COMPLETED", "seed {seed}: {run}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "seed {seed}: run {id} never ended: {run}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let status = daemon.terminate(Duration::from_secs(10)).expect("stops");
    assert!(status.success());

    // The log: seq from 1 without gap, every event legal where it stands (a step finishing
    // twice would not be), and the stored projections equal a fresh fold.
    let store = SqliteStore::open(data.join("loopd.db")).expect("open the log");
    let report = loop_store::replay(&store, None).expect("replay");
    assert!(
        report.differences.is_empty(),
        "seed {seed}: {:?}",
        report.differences
    );
    assert_eq!(report.runs, runs as u64);
    let all = store.read_all(loop_core::Seq(0), usize::MAX).expect("read");
    assert!(
        all.iter().enumerate().all(|(i, r)| r.seq.0 == i as u64 + 1),
        "seq has a gap"
    );
    // The kills did land mid-step: recovery had work to do.
    let interrupted = all
        .iter()
        .filter(
            |r| matches!(&r.event, Event::StepFinished(s) if s.status == StepStatus::Interrupted),
        )
        .count();
    assert!(interrupted > 0, "seed {seed}: no kill interrupted a step");
}
