//! `demo` and `init`: the first two commands a newcomer types.

use std::process::Command;

use crate::support::text;

#[test]
fn demo_runs_a_whole_loop_and_says_where_its_files_are() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("tour");
    let output = Command::new(env!("CARGO_BIN_EXE_loopctl"))
        .args(["demo", "--dir"])
        .arg(&root)
        .env_remove("LOOP_CONFIG")
        .output()
        .expect("run demo");
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stderr.contains("COMPLETED (complete_plan); 3 of 3 tasks"),
        "{stderr}"
    );
    assert!(
        stdout.contains("Taking the next task: write the hello note"),
        "{stdout}"
    );
    let summary = stdout
        .lines()
        .find_map(|line| line.strip_prefix("summary.json"))
        .map(str::trim)
        .expect("the summary's path is printed");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(summary).expect("summary.json"))
            .expect("json");
    assert_eq!(summary["exit_reason"], "complete_plan");
    // The person's checkout stayed on main with a clean tree; the work is on the run branch.
    let repo = root.join("greeting");
    let status = Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(&repo)
        .output()
        .expect("git");
    assert_eq!(text(&status.stdout), "");
    let replay = Command::new(env!("CARGO_BIN_EXE_loopctl"))
        .args(["replay", "--db"])
        .arg(root.join("data/loopd.db"))
        .output()
        .expect("replay");
    assert!(replay.status.success(), "{}", text(&replay.stdout));

    // A second demo into the same directory is refused rather than mixed in.
    let again = Command::new(env!("CARGO_BIN_EXE_loopctl"))
        .args(["demo", "--dir"])
        .arg(&root)
        .output()
        .expect("demo");
    assert_eq!(again.status.code(), Some(1));
}

#[test]
fn init_writes_every_key_once_and_never_overwrites() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_loopctl"))
            .arg("init")
            .current_dir(dir.path())
            .output()
            .expect("init")
    };
    let first = run();
    assert!(first.status.success(), "{}", text(&first.stderr));
    let written = std::fs::read_to_string(dir.path().join(".loop/config")).expect("config");
    for key in loop_core::config::KEYS {
        assert!(
            written.contains(&format!("# {}={}", key.name, key.default)),
            "{}",
            key.name
        );
    }
    let second = run();
    assert_eq!(second.status.code(), Some(1));
    assert!(text(&second.stderr).contains("already exists"));
}
