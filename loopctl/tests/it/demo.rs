//! `demo` and `init`: the first two commands a newcomer types.

use std::path::Path;
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

/// `loopctl init` (and `args`) in `dir`.
fn init(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loopctl"))
        .arg("init")
        .args(args)
        .current_dir(dir)
        .env_remove("LOOP_CONFIG")
        .output()
        .expect("init")
}

/// An empty git repository.
fn empty_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let status = Command::new("git")
        .args(["init", "-q", "-b", "main"])
        .current_dir(dir.path())
        .status()
        .expect("git init");
    assert!(status.success());
    dir
}

#[test]
fn init_writes_every_key_once_and_leaves_an_existing_config_alone() {
    let dir = empty_repo();
    let first = init(dir.path(), &[]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let config = dir.path().join(".loop/config");
    let written = std::fs::read_to_string(&config).expect("config");
    for key in loop_core::config::KEYS {
        assert!(
            written.contains(&format!("# {}={}", key.name, key.default)),
            "{}",
            key.name
        );
    }
    std::fs::write(&config, "iterations=7\n").expect("edit the config");
    let second = init(dir.path(), &[]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    assert!(
        text(&second.stdout).contains("left .loop/config as it is"),
        "{}",
        text(&second.stdout)
    );
    assert_eq!(
        std::fs::read_to_string(&config).expect("config"),
        "iterations=7\n"
    );
}

#[test]
fn init_scaffolds_a_spec_and_plan_only_when_there_is_none() {
    let dir = empty_repo();
    let first = init(dir.path(), &[]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let spec = std::fs::read_to_string(dir.path().join("specs/feature.md")).expect("a spec");
    let header = loop_core::spec::SpecHeader::parse(&spec);
    assert_eq!(header.title.as_deref(), Some("Feature"));
    assert_eq!(header.status.as_deref(), Some("Draft"));
    assert!(header.last_updated.is_some_and(|date| date.len() == 10));
    assert!(spec.contains("Replace every <placeholder>"), "{spec}");
    assert!(spec.contains("specs/planning/feature-plan.md"), "{spec}");
    let plan =
        std::fs::read_to_string(dir.path().join("specs/planning/feature-plan.md")).expect("a plan");
    let tasks = loop_core::plan::Plan::parse(&plan).tasks;
    assert!(
        tasks.iter().filter(|task| task.blocking).count() >= 1,
        "{plan}"
    );

    // A repository with a spec gets no template unless one is named; a named one never
    // overwrites.
    std::fs::write(dir.path().join("specs/feature.md"), "# Mine\n").expect("edit the spec");
    let again = init(dir.path(), &[]);
    assert!(again.status.success());
    assert!(
        text(&again.stdout).contains("has specs already"),
        "{}",
        text(&again.stdout)
    );
    assert!(!dir.path().join("specs/billing.md").exists());
    let named = init(dir.path(), &["--spec", "billing", "--json"]);
    assert!(named.status.success(), "{}", text(&named.stderr));
    let document: serde_json::Value = serde_json::from_slice(&named.stdout).expect("JSON");
    assert_eq!(document["spec"]["written"], true, "{document}");
    assert_eq!(document["plan"]["written"], true, "{document}");
    assert_eq!(document["config"]["written"], false, "{document}");
    assert!(dir.path().join("specs/planning/billing-plan.md").is_file());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("specs/feature.md")).expect("spec"),
        "# Mine\n"
    );
    let bad = init(dir.path(), &["--spec", "../escape"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn init_keeps_the_run_logs_out_of_git_through_the_exclude_file() {
    let dir = empty_repo();
    let first = init(dir.path(), &[]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let exclude = std::fs::read_to_string(dir.path().join(".git/info/exclude")).expect("exclude");
    assert_eq!(
        exclude
            .lines()
            .filter(|line| *line == "/logs/loop/")
            .count(),
        1,
        "{exclude}"
    );
    assert!(
        !dir.path().join(".gitignore").exists(),
        "no tracked file touched"
    );
    // A run's files under log_dir do not show in `git status`; the files init wrote do.
    let run_dir = dir.path().join("logs/loop/run-0196");
    std::fs::create_dir_all(&run_dir).expect("run dir");
    std::fs::write(run_dir.join("report.tsv"), "x\n").expect("a log");
    let status = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=all"])
        .current_dir(dir.path())
        .output()
        .expect("git status");
    let status = text(&status.stdout);
    assert!(!status.contains("logs/"), "{status}");
    assert!(status.contains("specs/feature.md"), "{status}");

    // Again: the line is not added twice.
    let again = init(dir.path(), &[]);
    assert!(again.status.success());
    let exclude = std::fs::read_to_string(dir.path().join(".git/info/exclude")).expect("exclude");
    assert_eq!(
        exclude
            .lines()
            .filter(|line| *line == "/logs/loop/")
            .count(),
        1,
        "{exclude}"
    );

    // Another log_dir, named by the config, is the one excluded.
    let other = empty_repo();
    std::fs::create_dir_all(other.path().join(".loop")).expect(".loop");
    std::fs::write(other.path().join(".loop/config"), "log_dir=.runs\n").expect("config");
    let output = init(other.path(), &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let exclude = std::fs::read_to_string(other.path().join(".git/info/exclude")).expect("exclude");
    assert!(exclude.lines().any(|line| line == "/.runs/"), "{exclude}");
}
