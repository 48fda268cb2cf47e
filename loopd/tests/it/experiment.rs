//! Experiment mode end to end (`specs/experiment.md`): a real repository whose measured program
//! runs as many loops as `loops.txt` says and prints their cost with ±1% random jitter, the
//! `experimenter.sh` stub making better, worse, neutral and better changes in that order, and the
//! real daemon measuring, deciding, moving the branch and merging the best. Then the same with
//! the daemon killed (SIGKILL) in the middle of a measurement.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use loop_core::event::{Decision, Event, Phase, StepStatus};
use loop_store::{EventStore, SqliteStore};
use loop_testkit::repo::git;
use serde_json::{Value, json};

use crate::support::{get_json, run_body, run_file, start_daemon, submit, wait_for_end};

mod cluster;

/// A repository with the spec, `loops.txt` at 1000 and `bench.sh`, committed on `main`, and no
/// plan: an experiment needs none.
pub fn bench_repo(root: &Path) -> PathBuf {
    let repo = loop_testkit::Repo::at(root.join("repo")).create();
    git(&repo, &["rm", "-q", loop_testkit::repo::PLAN]);
    loop_testkit::projects::add_loops(&repo);
    repo
}

/// An experiment's `POST /runs` body: in a worktree of its own, merged into `main` at the end.
pub fn experiment_body(repo: &Path, measure_cmd: &str, extra: Value) -> Value {
    let mut config = json!({
        "mode": "experiment",
        "measure_cmd": measure_cmd,
        "measure_repeats": "5",
        "patience": "0",
        "baseline_every": "2",
        "verify_cmds": "test -s loops.txt",
        "merge_target_branch": "main",
        "merge_strategy": "merge",
    });
    for (key, value) in extra.as_object().expect("an object") {
        config[key] = value.clone();
    }
    let mut body = run_body(repo, "experimenter.sh", config);
    body["no_worktree"] = json!(false);
    body
}

fn decisions(records: &[loop_core::EventRecord]) -> Vec<loop_core::event::ExperimentDecided> {
    records
        .iter()
        .filter_map(|record| match &record.event {
            Event::ExperimentDecided(decided) => Some(decided.clone()),
            _ => None,
        })
        .collect()
}

/// The log of `data`, replayed: no difference between its stored rows and a fresh fold.
fn assert_replays_clean(data: &Path) -> Vec<loop_core::EventRecord> {
    let store = SqliteStore::open(data.join("loopd.db")).expect("open the log");
    let report = loop_store::replay(&store, None).expect("replay");
    assert!(report.differences.is_empty(), "{:?}", report.differences);
    store.read_all(loop_core::Seq(0), usize::MAX).expect("read")
}

#[test]
fn an_experiment_keeps_what_is_better_reverts_the_rest_and_merges_its_best() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = bench_repo(dir.path());
    let data = dir.path().join("data");
    let start = git(&repo, &["rev-parse", "HEAD"]);
    let mut daemon = start_daemon(&data, &[], &[]);
    let id = submit(
        &daemon,
        &experiment_body(&repo, "sh bench.sh", json!({"iterations": "4"})),
    );
    let run = wait_for_end(&daemon, &id);
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert_eq!(run["exit_reason"], "iterations_exhausted", "{run}");

    let experiment = get_json(&daemon, &format!("/runs/{id}/experiment"));
    let rows = experiment["rows"].as_array().expect("rows");
    let kept: Vec<bool> = rows.iter().map(|row| row["kept"] == true).collect();
    // Row 0 is the start (the first best); then better (kept), worse, neutral (both
    // discarded), better (kept).
    assert_eq!(kept, [true, true, false, false, true], "{experiment}");
    assert_eq!(rows[0]["reason"], "baseline");
    assert_eq!(rows[0]["commit"], start.as_str());
    assert_eq!(rows[2]["reason"], "worse", "{experiment}");
    assert_ne!(rows[3]["reason"], "improved", "{experiment}");
    assert_eq!(rows[1]["idea"], "run 30% fewer loops");
    let best = rows[4]["commit"]
        .as_str()
        .expect("the best commit")
        .to_owned();
    assert_eq!(experiment["summary"]["best_commit"], best.as_str());
    assert_eq!(experiment["summary"]["kept"], 2);

    // The run branch ends at the best, and main has it: 1000 × 0.7 × 0.7 loops.
    let branch = run["worktree"]["run_branch"]
        .as_str()
        .expect("a run branch");
    assert_eq!(git(&repo, &["rev-parse", branch]), best);
    assert_eq!(
        git(&repo, &["show", "main:loops.txt"]),
        "490",
        "main has the best"
    );
    // The worse and the neutral candidates stay reachable under their refs.
    for (iteration, row) in [(2, &rows[2]), (3, &rows[3])] {
        let kept_ref = format!("refs/loop/experiments/{id}/{iteration}");
        assert_eq!(row["kept_ref"], kept_ref.as_str());
        assert_eq!(
            git(&repo, &["rev-parse", &kept_ref]),
            row["commit"].as_str().expect("a commit")
        );
    }

    // Each prompt told the agent the goal, the best, and every iteration decided before it.
    let seen = run_file(&repo, &data, &id, "seen");
    for iteration in 1..=4u32 {
        let prompt = std::fs::read_to_string(seen.join(format!("prompt-{iteration}.txt")))
            .expect("the prompt the agent saw");
        assert!(prompt.contains("sh bench.sh"), "{prompt}");
        for before in 1..iteration {
            assert!(
                prompt.contains(&format!("- iteration {before}: ")),
                "iteration {iteration}'s prompt lacks iteration {before}:\n{prompt}"
            );
        }
    }
    let fourth = std::fs::read_to_string(seen.join("prompt-4.txt")).expect("prompt 4");
    assert!(fourth.contains("run 30% more loops"), "{fourth}");

    // experiments.tsv: the header and the five rows.
    // (Written again as the run settles, which may still be under way: read it once whole.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let tsv = loop {
        let path = run_file(&repo, &data, &id, "experiments.tsv");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() == 6 || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(tsv.lines().count(), 6, "{tsv}");
    assert!(tsv.starts_with("iteration\tcommit\tidea\tmetric"), "{tsv}");

    // The figures across runs carry the experiment's metric.
    let stats = get_json(&daemon, "/stats");
    assert_eq!(stats["stats"]["experiments"]["kept"], 2, "{stats}");

    daemon.stop();
    let records = assert_replays_clean(&data);
    // The starting commit was measured at 0 and again after iteration 2 (baseline_every).
    let baselines: Vec<u32> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::ExperimentBaseline(b) => Some(b.iteration),
            _ => None,
        })
        .collect();
    assert_eq!(baselines, [0, 2]);
}

#[test]
fn a_daemon_killed_mid_measurement_measures_again_and_decides_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = bench_repo(dir.path());
    let data = dir.path().join("data");
    let marks = dir.path().join("marks");
    std::fs::create_dir_all(&marks).expect("marks");
    // Each measurement leaves a mark and takes a moment, so the kill lands inside one.
    let measure = format!(
        "echo x >> {}/$LOOP_MEASURE_ROLE-$LOOP_ITERATION; sleep 0.3; sh bench.sh",
        marks.display()
    );
    let mut daemon = start_daemon(&data, &[], &[]);
    let id = submit(
        &daemon,
        &experiment_body(
            &repo,
            &measure,
            json!({"iterations": "2", "measure_repeats": "3", "baseline_every": "0"}),
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marks.join("candidate-1").exists() {
        assert!(Instant::now() < deadline, "iteration 1 is never measured");
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon.kill();

    let mut daemon = start_daemon(&data, &[], &[]);
    let run = wait_for_end(&daemon, &id);
    assert_eq!(run["status"], "COMPLETED", "{run}");
    daemon.stop();

    let records = assert_replays_clean(&data);
    let decided = decisions(&records);
    let iterations: Vec<u32> = decided.iter().map(|d| d.iteration).collect();
    assert_eq!(iterations, [1, 2], "each iteration decided once");
    assert_eq!(decided[0].decision, Decision::Kept, "{decided:?}");
    let interrupted = records
        .iter()
        .filter(|r| {
            matches!(&r.event, Event::StepFinished(s)
                if s.phase == Phase::Measurement && s.status == StepStatus::Interrupted)
        })
        .count();
    assert_eq!(interrupted, 1, "the kill cut one measurement");
    let measured: Vec<u32> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::ExperimentMeasured(m) => Some(m.iteration),
            _ => None,
        })
        .collect();
    assert_eq!(
        measured,
        [1, 2],
        "the cut measurement's samples were not kept"
    );
    // The measurement taken again was whole: three samples of each side.
    let first = records
        .iter()
        .find_map(|r| match &r.event {
            Event::ExperimentMeasured(m) => Some(m.clone()),
            _ => None,
        })
        .expect("a measurement");
    assert_eq!(first.candidate.values.len(), 3);
    assert_eq!(first.best.values.len(), 3);
    let branch = run["worktree"]["run_branch"]
        .as_str()
        .expect("a run branch");
    assert_eq!(
        git(&repo, &["rev-parse", branch]),
        decided[1]
            .commit
            .clone()
            .filter(|_| decided[1].decision == Decision::Kept)
            .unwrap_or_else(|| decided[0].commit.clone().expect("kept")),
        "the branch ends at the best"
    );
}

#[test]
fn a_target_or_patience_ends_an_experiment_completed_with_its_best_merged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (reach, tire) = (dir.path().join("reach"), dir.path().join("tire"));
    let (reach, tire) = (bench_repo(&reach), bench_repo(&tire));
    let data = dir.path().join("data");
    let mut daemon = start_daemon(&data, &[], &[]);
    // 1000 loops at the start; the first change runs 700, under the target.
    let target = submit(
        &daemon,
        &experiment_body(
            &reach,
            "sh bench.sh",
            json!({"iterations": "4", "target": "800", "baseline_every": "0"}),
        ),
    );
    // Kept, worse, neutral: two in a row without a keep.
    let patience = submit(
        &daemon,
        &experiment_body(
            &tire,
            "sh bench.sh",
            json!({"iterations": "4", "patience": "2", "baseline_every": "0"}),
        ),
    );
    for (id, repo, exit_reason, decided) in [
        (&target, &reach, "target_reached", 1),
        (&patience, &tire, "patience_exhausted", 3),
    ] {
        let run = wait_for_end(&daemon, id);
        assert_eq!(run["status"], "COMPLETED", "{run}");
        assert_eq!(run["exit_reason"], exit_reason, "{run}");
        let experiment = get_json(&daemon, &format!("/runs/{id}/experiment"));
        assert_eq!(experiment["summary"]["iterations"], decided, "{experiment}");
        let best = experiment["summary"]["best_commit"]
            .as_str()
            .expect("a best commit")
            .to_owned();
        assert_eq!(
            experiment["rows"][1]["commit"],
            best.as_str(),
            "{experiment}"
        );
        let branch = run["worktree"]["run_branch"].as_str().expect("a branch");
        assert_eq!(
            git(repo, &["rev-parse", branch]),
            best,
            "the branch at the best"
        );
        assert_eq!(
            git(repo, &["show", "main:loops.txt"]),
            "700",
            "main has the best"
        );
        // The neutral change's note was discarded with it.
        assert!(
            git(repo, &["ls-tree", "--name-only", "main"])
                .lines()
                .all(|f| f != "notes.txt")
        );
    }
    daemon.stop();
    assert_replays_clean(&data);
}
