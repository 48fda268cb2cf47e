//! Scratch git repositories: a spec, a plan of pending tasks, a `.gitignore` for the logs, and
//! one commit on `main`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The spec of every scratch repository, relative to it.
pub const SPEC: &str = "specs/feature.md";
/// Its plan (`<plans_dir>/<spec stem>-plan.md`), relative to the repository.
pub const PLAN: &str = "specs/planning/feature-plan.md";

const SPEC_TEXT: &str =
    "# Feature\n\n**Status:** Draft\n**Last Updated:** 2026-11-25\n\nBuild it.\n";

/// A bare clone of `repo` at `to`, as a team's remote would be; its `file://` URL.
pub fn bare_clone(repo: &Path, to: &Path) -> String {
    let parent = to.parent().expect("a parent directory");
    git(
        parent,
        &[
            "clone",
            "--quiet",
            "--bare",
            &repo.to_string_lossy(),
            &to.to_string_lossy(),
        ],
    );
    format!("file://{}", to.display())
}

/// Runs `git <args>` in `dir`, which must succeed; its trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .env("GIT_AUTHOR_NAME", "loop test")
        .env("GIT_AUTHOR_EMAIL", "loop@example.invalid")
        .env("GIT_COMMITTER_NAME", "loop test")
        .env("GIT_COMMITTER_EMAIL", "loop@example.invalid")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The text of a plan of `tasks` pending tasks.
pub fn plan_text(tasks: usize) -> String {
    let mut plan = String::from("# Plan\n\n");
    for n in 1..=tasks {
        plan.push_str(&format!("- [ ] task {n}\n"));
    }
    plan
}

/// A repository to create: by default [`SPEC`], a [`PLAN`] of one task and no `.loop/config`.
#[derive(Clone, Debug)]
pub struct Repo {
    path: PathBuf,
    spec: String,
    plan: String,
    config: Option<String>,
}

impl Repo {
    /// A repository at `path` (created, with its parents).
    pub fn at(path: impl Into<PathBuf>) -> Repo {
        Repo {
            path: path.into(),
            spec: SPEC_TEXT.to_owned(),
            plan: plan_text(1),
            config: None,
        }
    }

    /// A plan of `tasks` pending tasks.
    pub fn tasks(mut self, tasks: usize) -> Repo {
        self.plan = plan_text(tasks);
        self
    }

    /// The plan's text.
    pub fn plan(mut self, text: &str) -> Repo {
        self.plan = text.to_owned();
        self
    }

    /// A committed `.loop/config` with these lines.
    pub fn config(mut self, text: &str) -> Repo {
        self.config = Some(text.to_owned());
        self
    }

    /// A committed `.loop/config` that runs `agent_cmd` with no reviewer, no postmortem and
    /// the spec's name, then `extra` lines.
    pub fn command_agent(self, agent_cmd: &str, extra: &str) -> Repo {
        let config = format!(
            "agent=command\nagent_cmd={agent_cmd}\nreviewer=false\npostmortem=false\n\
             run_naming_mode=spec_slug\n{extra}"
        );
        self.config(&config)
    }

    /// Writes the files and makes the first commit; the repository's path.
    pub fn create(self) -> PathBuf {
        let repo = self.path;
        let write = |relative: &str, text: &str| {
            let path = repo.join(relative);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("create dirs");
            std::fs::write(&path, text).expect("write a scratch file");
        };
        write(SPEC, &self.spec);
        write(PLAN, &self.plan);
        write(".gitignore", "logs/\n");
        if let Some(config) = &self.config {
            write(".loop/config", config);
        }
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["config", "user.name", "loop test"]);
        git(&repo, &["config", "user.email", "loop@example.invalid"]);
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-qm", "start"]);
        repo
    }
}

/// A temp dir holding a repository (`repo/`), removed when dropped; beside the repository
/// there is room for a data dir or a log.
#[derive(Debug)]
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    /// A temp dir with the default [`Repo`] of `tasks` tasks in it.
    pub fn new(tasks: usize) -> Scratch {
        Scratch::with(|repo| repo.tasks(tasks))
    }

    /// A temp dir with the repository `shape` makes of the default one.
    pub fn with(shape: impl FnOnce(Repo) -> Repo) -> Scratch {
        let dir = tempfile::tempdir().expect("temp dir");
        shape(Repo::at(dir.path().join("repo"))).create();
        Scratch { dir }
    }

    /// The repository.
    pub fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// An event log beside the repository (`loop.db`).
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("loop.db")
    }

    /// A data dir beside the repository (`data/`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Writes the plan afresh with `tasks` tasks to do (a run in the repository itself ticks
    /// them off in place; the next run needs work left).
    pub fn fresh_plan(&self, tasks: usize) {
        std::fs::write(self.repo().join(PLAN), plan_text(tasks)).expect("write the plan");
    }
}
