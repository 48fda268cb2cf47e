//! The command line around the daemon commands: no daemon, the token, completions, the spec
//! picker and its refusal off a terminal, usage errors.

use std::net::TcpListener;
use std::process::{Command, Stdio};

use crate::daemon::{Project, collect, start_daemon, stub};
use crate::support::{loopctl, text};

#[test]
fn no_daemon_is_a_one_line_error_that_names_the_address_and_how_to_start_one() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let output = loopctl(&["--addr", &addr, "list"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(4),
        "probes for 5 s before giving up"
    );
    let error = text(&output.stderr);
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(
        error.contains(&format!("no loopd answers at {addr}")),
        "{error}"
    );
    assert!(error.contains("loopd --data-dir"), "{error}");
    assert!(output.stdout.is_empty());
}

#[test]
fn the_token_is_sent_as_a_bearer_and_a_refusal_says_how_to_pass_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(dir.path(), "127.0.0.1:0", &[("LOOPD_AUTH_TOKEN", "s3cret")]);
    let refused = loopctl(&["--addr", &daemon.base, "list"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("pass its token with --token or LOOPD_TOKEN"),
        "{}",
        text(&refused.stderr)
    );
    let listed = loopctl(&[
        "--addr",
        &daemon.base,
        "--token",
        "s3cret",
        "list",
        "--json",
    ]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let document: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    assert_eq!(document["runs"], serde_json::json!([]));
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let output = loopctl(&["completions", shell]);
        assert!(output.status.success(), "{shell}");
        let script = text(&output.stdout);
        assert!(script.contains("loopctl"), "{shell}: {script}");
        assert!(
            script.contains("inspect"),
            "{shell}: every command is there"
        );
    }
    assert_eq!(loopctl(&["completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["list", "--limit", "many"][..],
        &["list", "--status", "asleep"],
        &["inspect"],
        &["merge", "x", "--strategy", "rebase"],
    ] {
        let output = loopctl(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn help_shows_examples() {
    for command in ["run", "list", "tail", "events", "merge"] {
        let output = loopctl(&[command, "--help"]);
        let help = text(&output.stdout);
        assert!(help.contains(&format!("loopctl {command}")), "{help}");
        assert!(help.contains("Example"), "{help}");
    }
}

#[test]
fn without_a_spec_off_a_terminal_run_and_prompt_say_to_pass_one() {
    let project = Project::new(&stub("one_task.sh"), 1);
    for command in ["run", "prompt"] {
        let output = project.loopctl(&[command]);
        assert_eq!(output.status.code(), Some(1), "{command}");
        let error = text(&output.stderr);
        assert!(
            error.contains(&format!(
                "no spec given: pass the spec file, e.g. `loopctl {command}"
            )),
            "{error}"
        );
        assert_eq!(error.lines().count(), 1, "{error}");
    }
    let missing = project.loopctl(&["run", "specs/nothing.md", "--no-worktree"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("specs/nothing.md"),
        "{}",
        text(&missing.stderr)
    );
}

/// Runs `loopctl args` on a pseudo-terminal (util-linux `script`), typing `input`.
fn on_a_terminal(project: &Project, args: &str, input: &str) -> Option<String> {
    let script = Command::new("script").arg("--version").output().ok()?;
    if !script.status.success() {
        return None;
    }
    let command = format!("{} {args}", env!("CARGO_BIN_EXE_loopctl"));
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(project.root())
        .env("LOOPD_ADDR", &project.daemon.base)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    // Typed ahead: the terminal keeps the line until the picker reads it.
    let mut stdin = child.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut stdin, input.as_bytes()).expect("type");
    let stdout = collect(child.stdout.take().expect("stdout"));
    let _ = collect(child.stderr.take().expect("stderr"));
    child.wait().expect("script ends");
    drop(stdin);
    let output = stdout.join().expect("stdout");
    Some(output)
}

#[test]
fn the_picker_lists_specs_newest_first_and_words_filter_them() {
    let project = Project::new(&stub("one_task.sh"), 1);
    let specs = project.root().join("specs");
    std::fs::write(
        specs.join("billing.md"),
        "# Billing\n\n**Status:** In Progress\n**Last Updated:** 2026-11-28\n",
    )
    .expect("spec");
    std::fs::write(
        specs.join("archive.md"),
        "# Archive\n\n**Status:** Complete\n**Last Updated:** 2025-01-02\n",
    )
    .expect("spec");
    for stem in ["billing", "archive"] {
        std::fs::write(
            specs.join(format!("planning/{stem}-plan.md")),
            "- [ ] one task\n",
        )
        .expect("plan");
    }
    let Some(screen) = on_a_terminal(&project, "prompt", "archive\n") else {
        eprintln!("skipped: no `script` to make a pseudo-terminal");
        return;
    };
    let billing = screen.find("specs/billing.md").expect(&screen);
    let feature = screen.find("specs/feature.md").expect(&screen);
    let archive = screen.find("specs/archive.md").expect(&screen);
    assert!(
        billing < feature && feature < archive,
        "newest first: {screen}"
    );
    assert!(screen.contains("2026-11-28  In Progress"), "{screen}");
    assert!(
        !screen.contains("feature-plan.md"),
        "plans are not specs: {screen}"
    );
    assert!(screen.contains("picked specs/archive.md"), "{screen}");
    assert!(
        screen.contains("@specs/archive.md"),
        "the prompt of the pick: {screen}"
    );

    // `run` picks by number and creates the run.
    let Some(screen) = on_a_terminal(&project, "run --no-worktree", "2\n") else {
        return;
    };
    assert!(screen.contains("picked specs/feature.md"), "{screen}");
    assert!(screen.contains("created run"), "{screen}");
}
