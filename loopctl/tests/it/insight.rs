//! `analyze` and `stats`: a postmortem on demand and figures across runs, offline over a log.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::{log_with_runs, path_arg, text};

/// A git repository whose runs use the built-in demo agent, with the postmortem off (so only
/// `analyze` makes one).
fn demo_repo() -> tempfile::TempDir {
    let config = "agent=demo\nreviewer=false\npostmortem=false\n";
    loop_testkit::Scratch::with(|repo| repo.config(config)).dir
}

fn loopctl_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loopctl"))
        .args(args)
        .current_dir(dir.join("repo"))
        .env("LOOPD_DATA_DIR", dir.join("data"))
        .env_remove("LOOP_CONFIG")
        .env_remove("LOOPD_ADDR")
        .output()
        .expect("run loopctl")
}

fn analysis_dir(repo: &Path) -> PathBuf {
    let runs = repo.join("repo/logs/loop");
    let run = std::fs::read_dir(&runs)
        .expect("log dir")
        .next()
        .expect("a run dir")
        .expect("entry")
        .path();
    run.join("analysis")
}

#[test]
fn analyze_prints_the_prompts_alone_then_runs_the_analyses() {
    let dir = demo_repo();
    let db = dir.path().join("loop.db");
    let db = path_arg(&db);
    let exec = loopctl_in(
        dir.path(),
        &["exec", "specs/feature.md", "--no-worktree", "--db", db],
    );
    assert!(exec.status.success(), "{}", text(&exec.stderr));

    // Prompts only: printed, written, and no agent asked.
    let prompts = loopctl_in(
        dir.path(),
        &["analyze", "--latest", "--prompt-only", "--db", db],
    );
    let (stdout, stderr) = (text(&prompts.stdout), text(&prompts.stderr));
    assert!(prompts.status.success(), "{stderr}");
    for part in [
        "===== spec-compliance.prompt.txt =====",
        "===== run-quality.prompt.txt =====",
        "===== summary.prompt.txt =====",
        "## Your task: run quality",
        "`implementation deviation`",
    ] {
        assert!(stdout.contains(part), "{part} in {stdout}");
    }
    assert!(
        stderr.contains("postmortem skipped: prompt only"),
        "{stderr}"
    );
    let analysis = analysis_dir(dir.path());
    assert!(analysis.join("summary.prompt.txt").is_file());
    assert!(!analysis.join("summary.md").exists());

    // On demand through the demo agent, the run named by an id prefix: three answers.
    let run_id = analysis
        .parent()
        .and_then(|run| run.file_name())
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_prefix("run-"))
        .expect("run-<id>")
        .to_owned();
    let analyzed = loopctl_in(
        dir.path(),
        &["analyze", &run_id[..13], "--json", "--db", db],
    );
    assert!(analyzed.status.success(), "{}", text(&analyzed.stderr));
    let document: Value = serde_json::from_slice(&analyzed.stdout).expect("one JSON document");
    let postmortem = &document["postmortem"];
    assert_eq!(postmortem["status"], "ok", "{document}");
    assert_eq!(postmortem["run_id"], run_id.as_str());
    for name in ["spec-compliance.md", "run-quality.md", "summary.md"] {
        assert!(
            postmortem["files"]
                .as_array()
                .expect("files")
                .iter()
                .any(|file| file["name"] == name),
            "{name} in {postmortem}"
        );
    }
    let summary = std::fs::read_to_string(analysis.join("summary.md")).expect("summary");
    assert!(summary.contains("## Root cause"));
    assert_eq!(document["summary"], summary.as_str());

    // For people: the findings, then one line saying where the files are (not a list of them).
    let shown = loopctl_in(dir.path(), &["analyze", &run_id, "--db", db]);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let stdout = text(&shown.stdout);
    assert!(stdout.starts_with(&summary), "the summary first: {stdout}");
    let rest = &stdout[summary.len()..];
    let lines: Vec<&str> = rest.lines().filter(|line| !line.is_empty()).collect();
    assert_eq!(lines.len(), 1, "then one line: {stdout}");
    assert!(
        lines[0].starts_with(&format!("full analysis in {}", analysis.display())),
        "{stdout}"
    );

    let unknown = loopctl_in(dir.path(), &["analyze", "no-such-run", "--db", db]);
    assert_eq!(unknown.status.code(), Some(1));
    let neither = loopctl_in(dir.path(), &["analyze", "--db", db]);
    assert_eq!(neither.status.code(), Some(2));
}

#[test]
fn stats_of_a_fixture_log_equal_the_hand_computed_figures() {
    // Three completed runs: each one iteration with three tasks, $0.75, a verification that
    // passed, and 5421 ms from RUN_STARTED to RUN_COMPLETED (see support::completed_run).
    let fixture = log_with_runs(3);
    let db = fixture.db();
    let output = crate::support::loopctl(&["stats", "--json", "--db", path_arg(&db)]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stats: Value = serde_json::from_slice(&output.stdout).expect("json");
    let expected = serde_json::json!({
        "since_ms": null,
        "workspace_root": null,
        "runs": {
            "total": 3, "completed": 3, "failed": 0, "canceled": 0, "active": 0,
            "by_exit_reason": {"complete_plan": 3},
        },
        "iterations_to_completion": {"count": 3, "mean": 1.0, "median": 1.0, "min": 1, "max": 1},
        "tasks_done": 9,
        "active_ms": 16_263,
        "cost_usd": 2.25,
        "time_per_task_ms": 1_807,
        "cost_per_task_usd": 0.25,
        "verification": {"passed": 3, "failed": 0, "pass_rate": 1.0},
        "watchdog": {"signals": {}, "rewrites": 0, "gave_up": 0},
        "usage_limits": {"waits": 0, "waited_ms": 0},
        "agent_retries": 0,
    });
    assert_eq!(stats, expected);

    let table = crate::support::loopctl(&["stats", "--since", "100000d", "--db", path_arg(&db)]);
    let table = text(&table.stdout);
    for line in [
        "runs            3 (3 completed, 0 failed, 0 canceled, 0 active)",
        "cost per task   $0.25 ($2.25 in all)",
        "verification    3 passed, 0 failed: 100.0% pass",
    ] {
        assert!(table.contains(line), "{line:?} in\n{table}");
    }

    // Another workspace has no runs; a bad age is a usage error.
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let scoped = Command::new(env!("CARGO_BIN_EXE_loopctl"))
        .args(["stats", "--workspace", "--json", "--db", path_arg(&db)])
        .current_dir(elsewhere.path())
        .output()
        .expect("run loopctl");
    let scoped: Value = serde_json::from_slice(&scoped.stdout).expect("json");
    assert_eq!(scoped["runs"]["total"], 0);
    let bad = crate::support::loopctl(&["stats", "--since", "soon", "--db", path_arg(&db)]);
    assert_eq!(bad.status.code(), Some(2));
}
