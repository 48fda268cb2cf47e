//! Scratch workspaces for the orchestration and load benchmarks: `loop-testkit`'s repositories,
//! the ones the test suites run against, and many copies of one.

use std::path::{Path, PathBuf};
use std::process::Command;

pub use loop_testkit::repo::{PLAN, SPEC, plan_text};

/// A git repository `root/name` with [`SPEC`], a [`PLAN`] of `tasks` pending tasks and one commit.
pub fn git_repo(root: &Path, name: &str, tasks: usize) -> PathBuf {
    loop_testkit::Repo::at(root.join(name))
        .tasks(tasks)
        .create()
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
