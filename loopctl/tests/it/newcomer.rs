//! A newcomer's first real run, end to end, the way the README walks it: a small project with a
//! failing test, `loopctl init`, a spec and a plan written and committed, the daemon, `loopctl
//! run … --follow`, then `loopctl merge` into the branch they have checked out.
//!
//! The agent is the Claude Code stub: it reads `@references` as strictly as the real CLI (a
//! reference followed by punctuation does not resolve and fails the call), speaks stream-json,
//! and does the work through `$CLAUDE_STUB_WORK`, a script standing in for a real agent's edits.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::daemon::start_daemon;
use crate::support::text;

fn git(dir: &Path, args: &[&str]) -> String {
    loop_testkit::git(dir, args)
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("create dirs");
    std::fs::write(path, content).expect("write");
}

/// The project's own test, run by hand as the person would.
fn project_test(repo: &Path) -> Output {
    Command::new("sh")
        .arg("tests/test_greet.sh")
        .current_dir(repo)
        .output()
        .expect("run the project's test")
}

#[test]
fn a_newcomer_fixes_a_failing_test_with_a_run_and_merges_it_into_their_branch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let repo = dir.path().join("greeter");

    // A small project whose test fails.
    write(&repo.join("greet.sh"), "echo \"Helo, $1\"\n");
    write(
        &repo.join("tests/test_greet.sh"),
        "out=$(sh greet.sh Ada)\n\
         [ \"$out\" = \"Hello, Ada\" ] || { echo \"expected 'Hello, Ada', got '$out'\"; exit 1; }\n",
    );
    write(&repo.join("README.md"), "# greeter\n\n`sh greet.sh NAME`\n");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "user.name", "A Newcomer"]);
    git(&repo, &["config", "user.email", "newcomer@example.invalid"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "greeter"]);
    assert!(
        !project_test(&repo).status.success(),
        "the test fails first"
    );

    let data_dir = dir.path().join("data");
    // What the agent does for each task: fix the spelling, then greet the world by default.
    let work = dir.path().join("agent-work.sh");
    write(
        &work,
        "case $(grep -c -- '- \\[x\\]' \"$LOOP_PLAN_PATH\") in\n\
         1) sed -i 's/Helo/Hello/' greet.sh ;;\n\
         2) printf 'echo \"Hello, ${1:-world}\"\\n' > greet.sh\n\
            printf '[ \"$(sh greet.sh)\" = \"Hello, world\" ] || exit 1\\n' >> tests/test_greet.sh ;;\n\
         esac\n",
    );
    let daemon = start_daemon(
        &data_dir,
        "127.0.0.1:0",
        &[("CLAUDE_STUB_WORK", work.to_str().expect("utf-8 path"))],
    );
    let loopctl = |args: &[&str]| -> Output {
        Command::new(env!("CARGO_BIN_EXE_loopctl"))
            .args(args)
            .current_dir(&repo)
            .env("HOME", &home)
            .env("LOOPD_ADDR", &daemon.base)
            .env_remove("LOOPD_TOKEN")
            .env_remove("LOOP_CONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("run loopctl")
    };
    let json = |args: &[&str]| -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let output = loopctl(&args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            text(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("one JSON document")
    };

    // `loopctl init`: a config, a spec and a plan to fill in, the logs kept out of git.
    let init = loopctl(&["init"]);
    assert!(init.status.success(), "{}", text(&init.stderr));
    let said = text(&init.stdout);
    assert!(said.contains(".loop/config"), "{said}");
    assert!(said.contains("specs/feature.md"), "{said}");
    let exclude = std::fs::read_to_string(repo.join(".git/info/exclude")).expect("exclude");
    assert!(exclude.lines().any(|l| l == "/logs/loop/"), "{exclude}");

    // The person writes the spec and plan, points the config at their agent, and commits.
    write(
        &repo.join("specs/feature.md"),
        "# Greeting\n\n`sh greet.sh NAME` prints `Hello, NAME`; with no name, `Hello, world`.\n\
         `sh tests/test_greet.sh` must pass.\n",
    );
    write(
        &repo.join("specs/planning/feature-plan.md"),
        "# Plan: greeting\n\n- [ ] Fix the spelling of the greeting\n\
         - [ ] Greet the world when no name is given, with a test\n",
    );
    let mut config = std::fs::read_to_string(repo.join(".loop/config")).expect("config");
    config.push_str(&format!(
        "\nagent=claude\nclaude_bin={}\n",
        loop_testkit::agents::path("claude_stub.sh").display()
    ));
    std::fs::write(repo.join(".loop/config"), config).expect("config");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "loop: spec and plan"]);

    // The first run, followed.
    let run = loopctl(&[
        "run",
        "specs/feature.md",
        "--verify-cmd",
        "sh tests/test_greet.sh",
        "--follow",
    ]);
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert_eq!(run.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("DONE: task"), "the agent's text: {stdout}");
    assert!(
        stdout.contains("$ sh tests/test_greet.sh"),
        "the verification: {stdout}"
    );
    assert!(stderr.contains("COMPLETED"), "{stderr}");
    assert!(stderr.contains("2/2 tasks"), "{stderr}");

    let runs = json(&["list"]);
    let view = &runs["runs"][0];
    let name = view["name"].as_str().expect("a name").to_owned();
    assert_eq!(
        name, "quiet-harbor-lights",
        "the naming call's proposal: {view}"
    );
    assert_eq!(view["status"], "COMPLETED", "{view}");
    // Two iterations, each an implementation and a review: no extra call to say COMPLETE.
    let inspected = json(&["inspect", &name]);
    assert_eq!(inspected["run"]["iteration"], 2, "{inspected}");
    let calls: Vec<&str> = inspected["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["phase"].as_str())
        .collect();
    assert_eq!(
        calls,
        [
            "implementation",
            "review",
            "verification",
            "implementation",
            "review",
            "verification"
        ],
        "{inspected}"
    );
    // The person's checkout saw nothing: no agent, no log file, no change.
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    assert!(!project_test(&repo).status.success(), "not merged yet");

    // What the run did, then the merge into the branch they are on.
    let diff = loopctl(&["diff", &name]);
    assert!(diff.status.success(), "{}", text(&diff.stderr));
    assert!(
        text(&diff.stdout).contains("greet.sh"),
        "{}",
        text(&diff.stdout)
    );
    let merge = loopctl(&["merge", &name, "--target", "main"]);
    assert!(merge.status.success(), "{}", text(&merge.stderr));
    assert_eq!(
        git(&repo, &["status", "--porcelain"]),
        "",
        "a clean checkout"
    );
    assert_eq!(git(&repo, &["branch", "--show-current"]), "main");
    let test = project_test(&repo);
    assert!(
        test.status.success(),
        "the test passes in their checkout: {}",
        text(&test.stdout)
    );
    assert!(
        std::fs::read_to_string(repo.join("specs/planning/feature-plan.md"))
            .expect("plan")
            .matches("- [x]")
            .count()
            == 2
    );
}
