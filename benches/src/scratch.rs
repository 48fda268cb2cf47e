//! Scratch workspaces for the orchestration and load benchmarks: a git repository with a spec
//! and a plan of pending tasks, as `loop-runtime`'s and `loopd`'s tests build them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The spec of every scratch workspace, relative to it.
pub const SPEC: &str = "specs/feature.md";
/// Its plan (`<plans_dir>/<spec stem>-plan.md`), relative to the workspace.
pub const PLAN: &str = "specs/planning/feature-plan.md";

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "loop bench")
        .env("GIT_AUTHOR_EMAIL", "loop@example.invalid")
        .env("GIT_COMMITTER_NAME", "loop bench")
        .env("GIT_COMMITTER_EMAIL", "loop@example.invalid")
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?} in {}", dir.display());
}

/// The text of a plan of `tasks` pending tasks.
pub fn plan_text(tasks: usize) -> String {
    let mut plan = String::from("# Plan\n\n");
    for n in 1..=tasks {
        plan.push_str(&format!("- [ ] task {n}\n"));
    }
    plan
}

/// A git repository `root/name` with [`SPEC`], a [`PLAN`] of `tasks` pending tasks and one commit.
pub fn git_repo(root: &Path, name: &str, tasks: usize) -> PathBuf {
    let repo = root.join(name);
    std::fs::create_dir_all(repo.join("specs/planning")).expect("create the scratch dirs");
    std::fs::write(
        repo.join(SPEC),
        "# Feature\n\n**Status:** Draft\n**Last Updated:** 2026-11-25\n\nBuild it.\n",
    )
    .expect("write the spec");
    std::fs::write(repo.join(PLAN), plan_text(tasks)).expect("write the plan");
    std::fs::write(repo.join(".gitignore"), "logs/\n").expect("write .gitignore");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "user.name", "loop bench"]);
    git(&repo, &["config", "user.email", "loop@example.invalid"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "start"]);
    repo
}

/// `count` copies of one [`git_repo`] under `root` (`repo-0`, `repo-1`, …): many workspaces
/// without running git for each.
pub fn git_repos(root: &Path, count: usize, tasks: usize) -> Vec<PathBuf> {
    let template = git_repo(root, "template", tasks);
    (0..count)
        .map(|n| {
            let copy = root.join(format!("repo-{n}"));
            let status = Command::new("cp")
                .arg("-a")
                .arg(&template)
                .arg(&copy)
                .status()
                .expect("cp runs");
            assert!(status.success(), "copy the template repository");
            copy
        })
        .collect()
}
