//! `stats`, `analyze`, `worktrees` and `gc` go where every other command goes: to the daemon at
//! `--addr` (or `LOOPD_ADDR`). `--db` reads a log file instead; no daemon at an address given
//! is an error, never a quiet read of another log; no daemon at the default address reads the
//! data dir's log, and says so.

use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon::{Project, stub};
use crate::support::{log_with_runs, path_arg, text};

fn document(output: &std::process::Output) -> Value {
    assert!(output.status.success(), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", text(&output.stdout)))
}

/// Runs one completed run of the feature spec on `project`'s daemon.
fn one_run(project: &Project) {
    project.fresh_plan(1);
    let id = project.create(&[]);
    assert_eq!(project.wait(&id)["status"], "COMPLETED");
}

#[test]
fn stats_with_addr_shows_that_daemons_runs_and_not_another_log() {
    let first = Project::new(&stub("one_task.sh"), 1);
    one_run(&first);
    let second = Project::new(&stub("one_task.sh"), 1);
    one_run(&second);
    one_run(&second);

    // From the first's workspace, with the first's data dir as the local log: the figures are
    // the second daemon's all the same.
    let output = first
        .command(&["--addr", &second.daemon.base, "stats", "--json"])
        .env("LOOPD_DATA_DIR", first.scratch.data_dir())
        .output()
        .expect("run loopctl");
    let stats = document(&output);
    assert_eq!(stats["runs"]["total"], 2, "{stats}");
    assert_eq!(stats["runs"]["completed"], 2, "{stats}");

    // LOOPD_ADDR names the first; its own figures.
    assert_eq!(first.json(&["stats"])["runs"]["total"], 1);
    // --db is the offline mode: that file, whatever the address says.
    let db = first.scratch.data_dir().join("loopd.db");
    let offline = first
        .command(&["--addr", &second.daemon.base, "stats", "--json", "--db"])
        .arg(&db)
        .output()
        .expect("run loopctl");
    assert_eq!(document(&offline)["runs"]["total"], 1);
}

#[test]
fn no_daemon_at_a_given_address_is_an_error_that_names_db() {
    let fixture = log_with_runs(1);
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("http://127.0.0.1:{port}");
    let refused = Command::new(env!("CARGO_BIN_EXE_loopctl"))
        .args(["--addr", &addr, "stats"])
        .env("LOOPD_DATA_DIR", fixture.dir.path())
        .env_remove("LOOPD_ADDR")
        .output()
        .expect("run loopctl");
    assert_eq!(refused.status.code(), Some(1));
    let error = text(&refused.stderr);
    assert!(
        error.contains(&format!("no loopd answers at {addr}")),
        "{error}"
    );
    assert!(error.contains("--db PATH"), "{error}");
    assert!(refused.stdout.is_empty(), "the local log was not read");

    // With --db, no daemon is asked: no 5 s probe.
    let started = Instant::now();
    let offline = Command::new(env!("CARGO_BIN_EXE_loopctl"))
        .args(["--addr", &addr, "stats", "--json", "--db"])
        .arg(fixture.db())
        .output()
        .expect("run loopctl");
    assert_eq!(document(&offline)["runs"]["total"], 1);
    assert!(started.elapsed() < Duration::from_secs(4), "no probe");
}

#[test]
fn no_daemon_at_the_default_address_reads_the_data_dirs_log_and_says_so() {
    if TcpStream::connect("127.0.0.1:7700").is_ok() {
        eprintln!("skipped: something listens on 127.0.0.1:7700, the default address");
        return;
    }
    let fixture = log_with_runs(2);
    let output = Command::new(env!("CARGO_BIN_EXE_loopctl"))
        .args(["stats", "--json"])
        .env("LOOPD_DATA_DIR", fixture.dir.path())
        .env_remove("LOOPD_ADDR")
        .output()
        .expect("run loopctl");
    assert_eq!(document(&output)["runs"]["total"], 2);
    let note = text(&output.stderr);
    assert!(
        note.contains("no loopd answers at http://127.0.0.1:7700; reading the event log"),
        "{note}"
    );
    assert!(note.contains(path_arg(&fixture.db())), "{note}");

    // And with no log there either, both ways on are named.
    let empty = tempfile::tempdir().expect("temp dir");
    let neither = Command::new(env!("CARGO_BIN_EXE_loopctl"))
        .args(["worktrees"])
        .env("LOOPD_DATA_DIR", empty.path())
        .env_remove("LOOPD_ADDR")
        .output()
        .expect("run loopctl");
    assert_eq!(neither.status.code(), Some(1));
    let error = text(&neither.stderr);
    assert!(
        error.contains("start loopd") && error.contains("--db"),
        "{error}"
    );
}

#[test]
fn worktrees_and_gc_go_through_the_daemon() {
    let project = Project::new(&stub("one_task.sh"), 1);
    let run = project.run(&[
        "run",
        "specs/feature.md",
        "--worktree-provider",
        "git",
        "--wait",
    ]);
    assert_eq!(run.status, loop_core::RunStatus::Completed, "{run:?}");
    let worktree = run.worktree.worktree_path.expect("a worktree");
    assert!(std::path::Path::new(&worktree).is_dir());
    // No log where loopctl would look on its own: only the daemon knows the worktree.
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let loopctl = |args: &[&str]| {
        project
            .command(args)
            .env("LOOPD_DATA_DIR", elsewhere.path())
            .output()
            .expect("run loopctl")
    };

    let listed = document(&loopctl(&["worktrees", "--json"]));
    let worktrees = listed["worktrees"].as_array().expect("a list");
    assert_eq!(worktrees.len(), 1, "{listed}");
    assert_eq!(worktrees[0]["path"], worktree.as_str());

    let dry = document(&loopctl(&["gc", "--dry-run", "--json"]));
    assert_eq!(dry["removed"].as_array().map(Vec::len), Some(1), "{dry}");
    assert!(std::path::Path::new(&worktree).is_dir(), "a dry run");
    let gc = document(&loopctl(&["gc", "--json"]));
    assert_eq!(gc["removed"].as_array().map(Vec::len), Some(1), "{gc}");
    assert!(!std::path::Path::new(&worktree).exists());
}

#[test]
fn analyze_through_the_daemon_prints_the_findings_then_where_the_files_are() {
    let project = Project::new(&stub("one_task.sh"), 1);
    // The built-in demo agent answers the analyses the way a real one would be asked to.
    std::fs::write(
        project.root().join(".loop/config"),
        "agent=demo\nreviewer=false\npostmortem=false\nrun_naming_mode=spec_slug\n",
    )
    .expect("config");
    let id = project.create(&[]);
    assert_eq!(project.wait(&id)["status"], "COMPLETED");
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let output = project
        .command(&["analyze", &id])
        .env("LOOPD_DATA_DIR", elsewhere.path())
        .output()
        .expect("run loopctl");
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("# summary") && stdout.contains("\n## Outcome\n"),
        "the findings first: {stdout}"
    );
    assert!(stdout.contains("## Root cause\n\nnone"), "{stdout}");
    let last = stdout.lines().last().expect("a line");
    assert!(last.starts_with("full analysis in "), "{stdout}");
    assert!(
        last.contains("/analysis: spec-compliance.md, run-quality.md, summary.md"),
        "{last}"
    );
    assert!(
        !stdout.contains(".prompt.txt"),
        "no list of files: {stdout}"
    );
    assert!(stderr.contains("postmortem ok"), "{stderr}");

    let json = project.json(&["analyze", &id]);
    assert_eq!(json["postmortem"]["status"], "ok", "{json}");
    assert!(
        json["summary"]
            .as_str()
            .is_some_and(|s| s.contains("## Root cause")),
        "{json}"
    );
}
