//! `worktrees`, `worktree-rm` and `gc` without a daemon, on a log and a repository that a real
//! `loopctl exec` run in its own git worktree left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::text;

/// A repository whose `.loop/config` runs the runtime tests' `one_task.sh` stub, and a finished
/// run of it in the worktree `<dir>/repo.run-feature`.
struct Finished {
    dir: tempfile::TempDir,
}

impl Finished {
    fn root(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn db(&self) -> String {
        self.dir
            .path()
            .join("loop.db")
            .to_str()
            .expect("utf-8")
            .to_owned()
    }

    fn worktree(&self) -> PathBuf {
        self.dir.path().join("repo.run-feature")
    }

    fn loopctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_loopctl"))
            .args(args)
            .current_dir(self.root())
            .env("LOOPD_DATA_DIR", self.dir.path().join("data"))
            .env_remove("LOOP_CONFIG")
            .env_remove("LOOPD_ADDR")
            .output()
            .expect("run loopctl")
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let output = self.loopctl(args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            text(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("one JSON document")
    }

    fn events(&self) -> i64 {
        let db = rusqlite::Connection::open(self.db()).expect("open log");
        db.query_row("SELECT count(*) FROM events", [], |row| row.get(0))
            .expect("count events")
    }
}

fn finished_run() -> Finished {
    let scratch = loop_testkit::Scratch::with(|repo| {
        repo.command_agent(&loop_testkit::agents::cmd("one_task.sh"), "")
    });
    let finished = Finished { dir: scratch.dir };
    let db = finished.db();
    let exec = finished.loopctl(&[
        "exec",
        "specs/feature.md",
        "--worktree-provider",
        "git",
        "--db",
        &db,
    ]);
    assert!(exec.status.success(), "exec: {}", text(&exec.stderr));
    assert!(finished.worktree().join("work.txt").is_file());
    finished
}

#[test]
fn worktrees_lists_the_runs_worktree_with_its_size() {
    let run = finished_run();
    let db = run.db();
    let listed = run.json(&["--json", "worktrees", "--db", &db]);
    let worktrees = listed["worktrees"].as_array().expect("a list");
    assert_eq!(worktrees.len(), 1, "{listed}");
    let worktree = &worktrees[0];
    assert_eq!(worktree["status"], "COMPLETED");
    assert_eq!(worktree["branch"], "run/feature");
    assert_eq!(worktree["exists"], true);
    assert_eq!(
        Path::new(worktree["path"].as_str().expect("a path")),
        run.worktree()
    );
    assert!(worktree["bytes"].as_u64().expect("bytes") > 0, "{worktree}");

    let table = run.loopctl(&["worktrees", "--db", &db]);
    let stdout = text(&table.stdout);
    assert!(table.status.success(), "{}", text(&table.stderr));
    assert!(stdout.contains("run/feature"), "{stdout}");
    assert!(stdout.contains("in 1 worktree"), "{stdout}");

    let missing = run.loopctl(&["worktrees", "--db", "/nonexistent/loop.db"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("no event log"));
}

#[test]
fn gc_dry_run_changes_nothing_and_gc_removes_the_worktree_and_keeps_the_branch() {
    let run = finished_run();
    let db = run.db();
    let events = run.events();

    let dry = run.json(&["gc", "--dry-run", "--json", "--db", &db]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["removed"].as_array().map(Vec::len), Some(1), "{dry}");
    let freed = dry["bytes_freed"].as_u64().expect("bytes_freed");
    assert!(freed > 0, "{dry}");
    assert!(run.worktree().join("work.txt").is_file(), "still there");
    assert_eq!(run.events(), events, "nothing appended");

    let young = run.json(&["gc", "--older-than", "1", "--json", "--db", &db]);
    assert_eq!(
        young["removed"].as_array().map(Vec::len),
        Some(0),
        "{young}"
    );
    assert!(run.worktree().is_dir());

    let bad = run.loopctl(&["gc", "--older-than", "-1", "--db", &db]);
    assert_eq!(bad.status.code(), Some(2), "a usage error");

    let gc = run.loopctl(&["gc", "--db", &db]);
    let stdout = text(&gc.stdout);
    assert!(gc.status.success(), "{}", text(&gc.stderr));
    assert!(stdout.contains("removed 1 worktree, freed"), "{stdout}");
    assert!(!run.worktree().exists());
    assert_eq!(run.events(), events + 1, "one WORKTREE_REMOVED");
    assert_eq!(
        loop_testkit::git(&run.root(), &["branch", "--list", "run/feature"]),
        "run/feature"
    );
    let listed = run.json(&["--json", "worktrees", "--db", &db]);
    assert_eq!(listed["worktrees"].as_array().map(Vec::len), Some(0));
}

#[test]
fn worktree_rm_removes_only_a_run_worktree() {
    let run = finished_run();
    let db = run.db();

    let refused = run.loopctl(&["worktree-rm", ".", "--db", &db]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("not the worktree of any run"),
        "{}",
        text(&refused.stderr)
    );
    assert!(run.root().join("specs/feature.md").is_file());

    let removed = run.json(&["--json", "worktree-rm", "../repo.run-feature", "--db", &db]);
    assert_eq!(removed["removed"]["branch"], "run/feature");
    assert!(removed["removed"]["bytes"].as_u64().expect("bytes") > 0);
    assert!(!run.worktree().exists());
}
