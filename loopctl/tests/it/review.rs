//! `diff`, `merge`, `scrap` and `pr` on finished runs that worked in git worktrees.

use crate::daemon::{Project, stub};
use crate::support::text;

#[test]
fn diff_merge_scrap_and_pr_of_finished_runs() {
    let project = Project::new(&stub("one_task.sh"), 2);
    // A target that is not checked out: a merge never moves a branch under a checkout.
    let branched = std::process::Command::new("git")
        .args(["branch", "release"])
        .current_dir(project.root())
        .status()
        .expect("git branch");
    assert!(branched.success());
    let branched = std::process::Command::new("git")
        .args(["branch", "release-2"])
        .current_dir(project.root())
        .status()
        .expect("git branch");
    assert!(branched.success());
    // One iteration for two tasks: FAILED with one commit on its branch.
    let failed = project.loopctl(&[
        "run",
        "specs/feature.md",
        "--worktree-provider",
        "git",
        "--name",
        "half",
        "--iterations",
        "1",
        "--wait",
    ]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed.stderr));

    let diff = project.loopctl(&["diff", "half"]);
    assert!(diff.status.success(), "{}", text(&diff.stderr));
    let shown = text(&diff.stdout);
    let first = shown.lines().next().expect("a line");
    assert!(
        first.contains("run/half against main: 1 commit, 2 files"),
        "{shown}"
    );
    assert!(
        shown.contains("task of iteration 1 (loop test, "),
        "{shown}"
    );
    assert!(shown.contains("specs/planning/feature-plan.md"), "{shown}");
    assert!(shown.contains("+work 1"), "the patch: {shown}");
    let document = project.json(&["diff", "half"]);
    let diff = document.get("diff").unwrap_or(&document);
    assert_eq!(diff["run_branch"], "run/half");
    assert_eq!(diff["commits"].as_array().map(Vec::len), Some(1));

    let scrapped = project.loopctl(&["scrap", "half"]);
    assert!(scrapped.status.success(), "{}", text(&scrapped.stderr));
    let said = text(&scrapped.stdout);
    assert!(said.contains("deleted the branch run/half"), "{said}");
    assert!(said.contains("`git branch run/half "), "{said}");

    let done = project.loopctl(&[
        "run",
        "specs/feature.md",
        "--worktree-provider",
        "git",
        "--name",
        "whole",
        "--wait",
    ]);
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    let merged = project.json(&[
        "merge",
        "whole",
        "--strategy",
        "squash",
        "--target",
        "release",
    ]);
    let merged = merged.get("merge").unwrap_or(&merged);
    assert_eq!(merged["target"], "release");
    assert_eq!(merged["strategy"], "squash");
    let head = std::process::Command::new("git")
        .args(["log", "-1", "--format=%H", "release"])
        .current_dir(project.root())
        .output()
        .expect("git log");
    assert_eq!(
        text(&head.stdout).trim(),
        merged["commit"].as_str().unwrap_or("")
    );

    let merged_again = project.loopctl(&["merge", "whole", "--target", "release-2"]);
    let said = text(&merged_again.stdout);
    assert!(
        said.starts_with("merged run ") && said.contains(" into release-2 as "),
        "{said}{}",
        text(&merged_again.stderr)
    );
    let scrapped = project.json(&["scrap", "whole"]);
    let scrapped = scrapped.get("scrap").unwrap_or(&scrapped);
    assert_eq!(scrapped["branch_deleted"], "run/whole");

    // No remote to push to: one line that says so.
    let pr = project.loopctl(&["pr", "whole"]);
    assert_eq!(pr.status.code(), Some(1));
    assert_eq!(text(&pr.stderr).lines().count(), 1, "{}", text(&pr.stderr));
    assert!(pr.stdout.is_empty());
}
