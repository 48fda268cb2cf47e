//! Small truths a person relies on, through real `loopd` and `loopctl` processes: a name keeps
//! meaning its run, a merge that did not land does not exit 0, the plan's tasks show from the
//! start, agent output cannot drive the terminal, a mistyped spec gets a suggestion, and `init`
//! outside git says what to do first.

use std::time::Duration;

use crate::daemon::{Project, start_daemon, stub};
use crate::support::text;

fn claude_project(tasks: usize, plan: &[&str], extra: &str) -> Project {
    let config = format!(
        "agent=claude\nclaude_bin={}\nreviewer=false\npostmortem=never\n{extra}",
        loop_testkit::agents::path("claude_stub.sh").display()
    );
    let scratch = loop_testkit::Scratch::with(|repo| repo.tasks(tasks).config(&config));
    std::fs::write(scratch.repo().join(".stub-plan"), plan.join("\n") + "\n").expect("stub plan");
    let daemon = start_daemon(&scratch.data_dir(), "127.0.0.1:0", &[]);
    Project { scratch, daemon }
}

#[test]
fn the_name_printed_at_creation_keeps_meaning_the_run_and_is_never_given_again() {
    let project = claude_project(1, &[], "run_naming_mode=haiku\n");
    std::fs::write(project.root().join(".stub-name"), "swift-owl").expect("stub name");
    let created = project.loopctl(&["run", "specs/feature.md", "--no-worktree"]);
    let stderr = text(&created.stderr);
    assert!(stderr.contains("(feature) in"), "{stderr}");
    assert!(stderr.contains("loopctl tail -f feature"), "{stderr}");
    let id = text(&created.stdout).trim().to_owned();
    let done = project.wait(&id);
    assert_eq!(done["name"], "swift-owl", "{done}");
    // The hint printed at creation still works, and means this run.
    assert_eq!(project.run(&["inspect", "feature"]).id.to_string(), id);
    // The next run of the spec is not given the name; a person may not give it either.
    project.fresh_plan(1);
    let second = project.run(&[
        "run",
        "specs/feature.md",
        "--no-worktree",
        "--name-source",
        "spec_slug",
    ]);
    assert_eq!(second.name, "feature-2", "{second:?}");
    // The second run works in place and finishes the plan: once it is over, a plan with a task
    // left, so that what refuses the next run is its name (a plan with nothing to do is
    // refused before the name is looked at).
    let second_id = second.id.to_string();
    project.wait(&second_id);
    project.fresh_plan(1);
    let refused = project.loopctl(&[
        "run",
        "specs/feature.md",
        "--no-worktree",
        "--name",
        "feature",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("a name means one run for good"),
        "{}",
        text(&refused.stderr)
    );
}

#[test]
fn a_completed_run_whose_merge_did_not_land_exits_3_and_says_what_to_run() {
    let project = Project::new(&stub("one_task.sh"), 1);
    // A change in the person's checkout keeps the merge out.
    std::fs::write(
        project.root().join("specs/feature.md"),
        "# Feature\n\nedited\n",
    )
    .expect("edit the spec");
    let output = project.loopctl(&[
        "run",
        "specs/feature.md",
        "--merge-target",
        "main",
        "--wait",
    ]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(3), "{stdout}{stderr}");
    assert!(
        stdout.contains("COMPLETED (complete_plan), merge not landed"),
        "{stdout}"
    );
    assert!(stderr.contains("`loopctl merge feature`"), "{stderr}");
    let inspect = project.loopctl(&["inspect", "feature"]);
    let shown = text(&inspect.stdout);
    assert!(shown.contains("not landed in main"), "{shown}");
    let list = text(&project.loopctl(&["list"]).stdout);
    assert!(list.contains("merge not landed"), "{list}");
}

#[test]
fn a_run_shows_its_plans_tasks_before_its_first_step_ends() {
    let project = Project::new(&stub("hang.sh"), 4);
    let id = project.create(&[]);
    let run = project.run(&["inspect", &id]);
    assert_eq!((run.tasks_done, run.tasks_total), (0, 4), "{run:?}");
    project.json(&["cancel", &id]);
}

#[test]
fn tail_removes_terminal_escapes_unless_raw() {
    let project = claude_project(1, &["escapes"], "run_naming_mode=spec_slug\n");
    let id = project.create(&[]);
    project.wait(&id);
    let plain = text(&project.loopctl(&["tail", &id]).stdout);
    assert!(plain.contains("red words and a title"), "{plain:?}");
    assert!(
        !plain.contains('\x1b') && !plain.contains('\x07'),
        "{plain:?}"
    );
    let raw = text(&project.loopctl(&["tail", &id, "--raw"]).stdout);
    assert!(raw.contains("\x1b[31mred words"), "{raw:?}");
}

#[test]
fn a_mistyped_spec_gets_a_did_you_mean() {
    let project = Project::new(&stub("one_task.sh"), 1);
    let output = project.loopctl(&["run", "specs/featur.md", "--no-worktree"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("did you mean specs/feature.md?"),
        "{stderr}"
    );
}

#[test]
fn init_outside_git_says_what_to_do_before_a_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_loopctl"))
        .arg("init")
        .current_dir(dir.path())
        .env(
            "GIT_CEILING_DIRECTORIES",
            dir.path().parent().expect("a parent"),
        )
        .output()
        .expect("run loopctl init");
    assert_eq!(output.status.code(), Some(0));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("is not in a git repository"), "{stderr}");
    assert!(stderr.contains("git init"), "{stderr}");
    assert!(!stderr.contains("next: describe"), "{stderr}");
}

#[test]
fn analyze_shows_the_postmortem_a_run_has_and_pays_only_when_asked_again() {
    let project = claude_project(1, &[], "run_naming_mode=spec_slug\npostmortem=always\n");
    let id = project.create(&[]);
    project.wait(&id);
    let calls = || {
        let dir = project.root().join(format!("logs/loop/run-{id}"));
        std::fs::read_to_string(dir.join("analysis-calls")).map_or(0, |calls| calls.lines().count())
    };
    loop_testkit::until("the postmortem ends", Duration::from_secs(60), || {
        project.run(&["inspect", &id]).postmortem.as_deref() == Some("ok")
    });
    let before = calls();
    assert_eq!(before, 3, "the run's own postmortem");
    let shown = project.loopctl(&["analyze", &id]);
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown.stderr));
    assert!(
        text(&shown.stderr).contains("--again` runs new analyses"),
        "{}",
        text(&shown.stderr)
    );
    assert!(
        text(&shown.stdout).contains("# summary of"),
        "{}",
        text(&shown.stdout)
    );
    assert_eq!(calls(), before, "no new call without --again");
    let again = project.loopctl(&["analyze", &id, "--again"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(calls(), before + 3);
}
