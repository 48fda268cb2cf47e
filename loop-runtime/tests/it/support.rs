//! A scratch workspace (git repository with a spec and a plan), a runtime over a temp log, and
//! the stub agents in `tests/it/agents/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use loop_core::EventRecord;
use loop_core::config::Layer;
use loop_core::event::Event;
use loop_runtime::{RunRequest, Runtime};
use loop_store::SqliteStore;

pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn workspace(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("loop.db")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "loop test")
        .env("GIT_AUTHOR_EMAIL", "loop@example.invalid")
        .env("GIT_COMMITTER_NAME", "loop test")
        .env("GIT_COMMITTER_EMAIL", "loop@example.invalid")
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

/// A git repository with `specs/feature.md` and a plan of `tasks` pending tasks.
pub fn scratch(tasks: usize) -> Scratch {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("specs/planning")).expect("dirs");
    std::fs::write(
        repo.join("specs/feature.md"),
        "# Feature\n\n**Status:** Draft\n**Last Updated:** 2026-11-25\n\nBuild it.\n",
    )
    .expect("spec");
    let mut plan = String::from("# Plan\n\n");
    for n in 1..=tasks {
        plan.push_str(&format!("- [ ] task {n}\n"));
    }
    std::fs::write(repo.join("specs/planning/feature-plan.md"), plan).expect("plan");
    std::fs::write(repo.join(".gitignore"), "logs/\n").expect("gitignore");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "user.name", "loop test"]);
    git(&repo, &["config", "user.email", "loop@example.invalid"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "start"]);
    Scratch { dir }
}

pub fn agent(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/agents")
        .join(name);
    format!("sh {}", path.display())
}

pub fn runtime(scratch: &Scratch) -> Runtime {
    let store = Arc::new(SqliteStore::open(scratch.db()).expect("open log"));
    Runtime::builder()
        .store(store)
        .data_dir(scratch.data_dir())
        .build()
        .expect("runtime")
}

/// A request for the scratch spec with the stub `agent` and these config values on top.
pub fn request(scratch: &Scratch, agent_script: &str, config: &[(&str, &str)]) -> RunRequest {
    let mut layer = Layer::new();
    for (key, value) in [
        ("agent", "command"),
        ("worktree_provider", "none"),
        ("postmortem", "false"),
        ("claude_retry_backoff_sec", "0"),
        ("agent_idle_timeout_sec", "0"),
        ("run_naming_mode", "spec_slug"),
    ] {
        layer.insert(key.to_owned(), value.to_owned());
    }
    layer.insert("agent_cmd".to_owned(), agent(agent_script));
    for (key, value) in config {
        layer.insert((*key).to_owned(), (*value).to_owned());
    }
    RunRequest {
        workspace_root: scratch.workspace(),
        spec_path: "specs/feature.md".to_owned(),
        config: layer,
        ..RunRequest::default()
    }
}

/// Waits for the run to end, at most a minute.
pub async fn finish(runtime: &Runtime, run_id: loop_core::RunId) -> loop_core::projection::RunView {
    tokio::time::timeout(Duration::from_secs(60), runtime.wait(run_id))
        .await
        .expect("the run ends within a minute")
        .expect("wait")
}

pub fn types(records: &[EventRecord]) -> Vec<&'static str> {
    records
        .iter()
        .map(|r| r.event.event_type().as_str())
        .collect()
}

pub fn count(records: &[EventRecord], matches: impl Fn(&Event) -> bool) -> usize {
    records.iter().filter(|r| matches(&r.event)).count()
}
