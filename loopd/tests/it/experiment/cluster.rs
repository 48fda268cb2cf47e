//! An experiment by URL on a two-node cluster over PostgreSQL (`specs/experiment.md`, "The
//! runtime"): the node driving it is stopped (SIGSTOP) past its lease in the middle of its
//! first measurement, the other takes it over, and the experiment still decides each iteration
//! once, ends at its best, and leaves each discarded candidate's ref on the remote — pushed
//! once, by the node holding the claim.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use loop_core::event::Decision;
use loop_testkit::git;
use loop_testkit::postgres::Postgres;
use nix::sys::signal::Signal;
use serde_json::json;

use super::{bench_repo, decisions};
use crate::cluster::{
    assert_replays_clean, assert_steps_closed_once, events, node, node_id, status_on, url_body,
};
use crate::support::{get_json, stub, submit, wait_for_end};

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn an_experiment_by_url_taken_over_mid_measurement_decides_once_and_pushes_its_refs_from_the_claim()
{
    let Some(server) = Postgres::start(
        "experiment::cluster::an_experiment_by_url_taken_over_mid_measurement_decides_once_and_pushes_its_refs_from_the_claim",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let origin = bench_repo(&dir.path().join("origin"));
    let bare = dir.path().join("remote.git");
    let url = loop_testkit::bare_clone(&origin, &bare);
    // Every update the remote takes is written down with the node that pushed it (the pushing
    // node's environment reaches the remote's hooks over `file://`).
    let pushes = dir.path().join("pushes");
    let recorder = bare.join("hooks/post-receive");
    std::fs::write(
        &recorder,
        format!(
            "#!/bin/sh\nwhile read old new ref; do echo \"$NODE $old $new $ref\" >> {}; done\n",
            pushes.display()
        ),
    )
    .expect("write the recorder");
    std::fs::set_permissions(
        &recorder,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("make the recorder executable");
    // Each measurement leaves a mark naming its node, and takes a moment, so the stop lands
    // inside one.
    let marks = dir.path().join("marks");
    std::fs::create_dir_all(&marks).expect("marks");
    let measure = format!(
        "echo x >> {}/$NODE-$LOOP_MEASURE_ROLE-$LOOP_ITERATION; sleep 0.3; sh bench.sh",
        marks.display()
    );
    let body = url_body(
        &url,
        &stub("experimenter.sh"),
        json!({
            "mode": "experiment",
            "measure_cmd": measure,
            "measure_repeats": "3",
            "patience": "0",
            "baseline_every": "0",
            "iterations": "4",
            "verify_cmds": "test -s loops.txt",
            "merge_target_branch": "main",
            "merge_strategy": "merge",
        }),
    );

    let a = node(dir.path(), &server, "a", 2000);
    let a_id = node_id(&a);
    let id = submit(&a, &body);
    loop_testkit::until("node a drives the experiment", MINUTE, || {
        status_on(&a, &id)["node"] == a_id.as_str()
    });
    let b = node(dir.path(), &server, "b", 2000);
    let b_id = node_id(&b);
    let deadline = Instant::now() + MINUTE;
    while !marks.join("a-candidate-1").exists() {
        assert!(
            Instant::now() < deadline,
            "node a never measures iteration 1"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    a.signal(Signal::SIGSTOP);
    loop_testkit::until("node b takes the experiment over", MINUTE, || {
        status_on(&b, &id)["node"] == b_id.as_str()
    });
    // Node a goes on, and finds the run is no longer its own.
    a.signal(Signal::SIGCONT);
    let run = wait_for_end(&b, &id);
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert_eq!(run["exit_reason"], "iterations_exhausted", "{run}");
    loop_testkit::until("node a answers again", MINUTE, || {
        status_on(&a, &id)["status"] == "COMPLETED"
    });

    // Each iteration decided once, in order; better, worse, neutral, better.
    let records = events(&server, &id);
    let decided = decisions(&records);
    let iterations: Vec<u32> = decided.iter().map(|d| d.iteration).collect();
    assert_eq!(iterations, [1, 2, 3, 4], "each iteration decided once");
    assert_eq!(decided[0].decision, Decision::Kept, "{decided:?}");
    assert_eq!(decided[1].decision, Decision::Discarded, "{decided:?}");
    assert_eq!(decided[3].decision, Decision::Kept, "{decided:?}");
    // Node b measured iteration 1 again: node a's cut measurement decided nothing.
    assert!(
        marks.join("b-candidate-1").exists(),
        "iteration 1 measured again on b"
    );

    // The run ends at its best, on the remote: its branch there, and main has it.
    let experiment = get_json(&b, &format!("/runs/{id}/experiment"));
    let best = experiment["summary"]["best_commit"]
        .as_str()
        .expect("a best commit")
        .to_owned();
    let branch = run["worktree"]["run_branch"]
        .as_str()
        .expect("a run branch");
    assert_eq!(git(&bare, &["rev-parse", branch]), best, "{experiment}");
    let best_loops = git(&bare, &["show", &format!("{best}:loops.txt")]);
    assert_eq!(git(&bare, &["show", "main:loops.txt"]), best_loops);

    // Each discarded candidate's ref is on the remote, at the candidate.
    let mut discarded = Vec::new();
    for d in decided.iter().filter(|d| d.decision == Decision::Discarded) {
        let Some(commit) = &d.commit else { continue };
        let kept_ref = format!("refs/loop/experiments/{id}/{}", d.iteration);
        assert_eq!(d.kept_ref.as_deref(), Some(kept_ref.as_str()), "{d:?}");
        assert_eq!(&git(&bare, &["rev-parse", &kept_ref]), commit, "{kept_ref}");
        discarded.push(kept_ref);
    }
    assert!(
        !discarded.is_empty(),
        "the worse change is a discarded candidate: {decided:?}"
    );
    // Each pushed once, as a new ref, by the node that held the claim when its iteration was
    // decided: b (a was stopped in iteration 1 and never held the run again).
    let log = std::fs::read_to_string(&pushes).unwrap_or_default();
    let mut pushed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in log.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if let [who, old, _new, name] = fields[..]
            && name.starts_with("refs/loop/experiments/")
        {
            assert!(
                old.bytes().all(|c| c == b'0'),
                "a candidate's ref moved: {line}"
            );
            pushed
                .entry(name.to_owned())
                .or_default()
                .push(who.to_owned());
        }
    }
    let wanted: BTreeMap<String, Vec<String>> = discarded
        .iter()
        .map(|name| (name.clone(), vec!["b".to_owned()]))
        .collect();
    assert_eq!(pushed, wanted, "who pushed the candidates' refs:\n{log}");

    assert_steps_closed_once(&records);
    assert_replays_clean(&server);
}
