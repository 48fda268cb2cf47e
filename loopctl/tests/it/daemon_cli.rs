//! The command line around the daemon commands: no daemon, the token, completions, the spec
//! picker and its refusal off a terminal, usage errors, errors under `--json`, help.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon::{Project, collect, start_daemon, stub};
use crate::support::{loopctl, text};

#[test]
fn no_daemon_is_a_one_line_error_that_names_the_address_and_how_to_start_one() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let output = loopctl(&["--addr", &addr, "list"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        started.elapsed() >= Duration::from_secs(4),
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
    let document: Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    assert_eq!(document["runs"], serde_json::json!([]));
}

#[test]
fn loopd_auth_token_alone_reaches_a_daemon_that_reads_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(dir.path(), "127.0.0.1:0", &[("LOOPD_AUTH_TOKEN", "s3cret")]);
    // No data dir of the daemon's to find its token file in: only the variable can carry it.
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let listed = Command::new(env!("CARGO_BIN_EXE_loopctl"))
        .args(["--addr", &daemon.base, "list", "--json"])
        .env_remove("LOOPD_TOKEN")
        .env("LOOPD_AUTH_TOKEN", "s3cret")
        .env("LOOPD_DATA_DIR", elsewhere.path())
        .output()
        .expect("run loopctl");
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let document: Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    assert_eq!(document["runs"], serde_json::json!([]));
}

#[test]
fn completions_stop_quietly_when_the_reader_goes_away() {
    for shell in ["fish", "bash", "zsh"] {
        // A pipe of one page: the script (tens of KiB) cannot fit in it, so loopctl is still
        // writing when the reader goes away, as with `loopctl completions fish | head -1`.
        // Close-on-exec: without it loopctl (and any child another test starts meanwhile) would
        // inherit the read end, and the pipe would never close.
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("a pipe");
        nix::fcntl::fcntl(&read, nix::fcntl::FcntlArg::F_SETPIPE_SZ(4096)).expect("pipe size");
        let mut child = Command::new(env!("CARGO_BIN_EXE_loopctl"))
            .args(["completions", shell])
            .stdout(Stdio::from(write))
            .stderr(Stdio::piped())
            .spawn()
            .expect("start loopctl");
        let mut reader = BufReader::new(std::fs::File::from(read));
        let mut first = String::new();
        reader.read_line(&mut first).expect("one line");
        assert!(!first.is_empty(), "{shell}");
        drop(reader);
        let stderr = collect(child.stderr.take().expect("stderr"));
        let status = child.wait().expect("loopctl ends");
        let stderr = stderr.join().expect("stderr");
        assert!(!stderr.contains("panicked"), "{shell}: {stderr}");
        assert_ne!(status.code(), Some(101), "{shell}: {stderr}");
        assert!(stderr.is_empty(), "{shell}: quietly: {stderr}");
    }
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
fn errors_under_json_are_one_json_object_with_a_code() {
    let project = Project::new(&stub("one_task.sh"), 1);
    // The daemon's own code for a run it does not have.
    let missing = project.loopctl(&["inspect", "01234567-89ab-7def-8123-456789abcdef", "--json"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(missing.stdout.is_empty());
    let error: Value = serde_json::from_slice(&missing.stderr)
        .unwrap_or_else(|e| panic!("one JSON object ({e}): {}", text(&missing.stderr)));
    assert_eq!(error["code"], "run_not_found", "{error}");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|m| m.contains("`loopctl list` shows the runs")),
        "{error}"
    );
    let unknown = project.loopctl(&["--json", "tail", "nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&unknown.stderr).expect("one JSON object");
    assert_eq!(error["code"], "run_not_found", "{error}");

    // Refused by the daemon: its code, its words.
    let id = project.create(&["--name", "done"]);
    project.wait(&id);
    let illegal = project.loopctl(&["pause", "done", "--json"]);
    assert_eq!(illegal.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&illegal.stderr).expect("one JSON object");
    assert_eq!(error["code"], "illegal_transition", "{error}");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|m| m.contains("cannot pause a run that is COMPLETED")),
        "{error}"
    );

    // An error of loopctl's own, and a usage error (exit 2), the same shape.
    let no_spec = project.loopctl(&["run", "specs/nothing.md", "--json"]);
    assert_eq!(no_spec.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&no_spec.stderr).expect("one JSON object");
    assert!(
        error["code"].is_string() && error["error"].is_string(),
        "{error}"
    );
    let usage = loopctl(&["list", "--limit", "many", "--json"]);
    assert_eq!(usage.status.code(), Some(2));
    let error: Value = serde_json::from_slice(&usage.stderr)
        .unwrap_or_else(|e| panic!("one JSON object ({e}): {}", text(&usage.stderr)));
    assert_eq!(error["code"], "usage", "{error}");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|m| m.contains("--limit")),
        "{error}"
    );
    // Without --json, a person's line as before.
    let plain = loopctl(&["list", "--limit", "many"]);
    assert_eq!(plain.status.code(), Some(2));
    assert!(
        text(&plain.stderr).starts_with("error: "),
        "{}",
        text(&plain.stderr)
    );
}

#[test]
fn every_run_flag_has_help_text() {
    let output = loopctl(&["run", "--help"]);
    assert!(output.status.success());
    let help = text(&output.stdout);
    // Long help: a flag on its own line, its text indented on the lines below.
    let lines: Vec<&str> = help.lines().collect();
    let mut flags = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if !(trimmed.starts_with("--") || trimmed.starts_with("-h") || trimmed.starts_with("-V")) {
            continue;
        }
        let flag = trimmed
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches(',');
        let indent = line.len() - trimmed.len();
        let described = lines.get(n + 1).is_some_and(|next| {
            let text = next.trim_start();
            !text.is_empty() && next.len() - text.len() > indent
        });
        assert!(described, "{flag} has no help text:\n{help}");
        flags.push(flag.to_owned());
    }
    for flag in [
        "--agent-cmd",
        "--name-source",
        "--verify-cmd",
        "--max-cost",
        "--no-worktree",
        "--follow",
        "--wait",
    ] {
        assert!(flags.iter().any(|f| f == flag), "{flag} in {flags:?}");
    }
    // The contract's spelling, with the config key's shown beside it.
    assert!(help.contains("[alias: --run-naming-mode]"), "{help}");
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

/// Whether util-linux `script` is here to make a pseudo-terminal.
fn have_script() -> bool {
    Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// `loopctl args` on a pseudo-terminal (util-linux `script`) with `env`; its screen is read as
/// it comes.
struct Terminal {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    chunks: mpsc::Receiver<String>,
    screen: String,
}

impl Terminal {
    fn start(project: &Project, args: &str, env: &[(&str, &str)]) -> Terminal {
        let command = format!("{} {args}", env!("CARGO_BIN_EXE_loopctl"));
        let mut script = Command::new("script");
        script
            .args(["-qec", &command, "/dev/null"])
            .current_dir(project.root())
            .env("LOOPD_ADDR", &project.daemon.base)
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            script.env(key, value);
        }
        let mut child = script.spawn().expect("start script");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = child.stdout.take().expect("stdout");
        let _ = collect(child.stderr.take().expect("stderr"));
        let (send, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buffer) {
                if n == 0
                    || send
                        .send(String::from_utf8_lossy(&buffer[..n]).into_owned())
                        .is_err()
                {
                    break;
                }
            }
        });
        Terminal {
            child,
            stdin,
            chunks,
            screen: String::new(),
        }
    }

    /// Waits until the screen shows `text` (10 s at most); the screen so far.
    fn expect(&mut self, text: &str) -> &str {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.screen.contains(text) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.screen.push_str(&chunk),
                Err(_) => panic!("{text:?} never showed on the screen: {}", self.screen),
            }
        }
        &self.screen
    }

    fn type_keys(&mut self, keys: &str) {
        self.stdin.write_all(keys.as_bytes()).expect("type");
        self.stdin.flush().expect("type");
    }

    /// The exit status of loopctl (through `script -e`) and the whole screen.
    fn end(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().expect("script ends");
        while let Ok(chunk) = self.chunks.recv_timeout(Duration::from_secs(2)) {
            self.screen.push_str(&chunk);
        }
        (status.code(), self.screen)
    }
}

/// The feature spec of the project, and two more: one newer, one older; and a fourth, the
/// newest, whose plan is finished, which no picker offers (a run of it would be refused).
fn three_specs(project: &Project) {
    let specs = project.root().join("specs");
    std::fs::write(
        specs.join("shipped.md"),
        "# Shipped\n\n**Status:** Complete\n**Last Updated:** 2026-12-01\n",
    )
    .expect("spec");
    std::fs::write(
        specs.join("planning/shipped-plan.md"),
        "- [x] one task\n- [x] another\n",
    )
    .expect("plan");
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
}

#[test]
fn the_fuzzy_picker_filters_as_you_type_and_enter_picks_the_highlighted_spec() {
    if !have_script() {
        eprintln!("skipped: no `script` to make a pseudo-terminal");
        return;
    }
    let project = Project::new(&stub("one_task.sh"), 1);
    three_specs(&project);
    let mut terminal = Terminal::start(&project, "prompt", &[("TERM", "xterm")]);
    let screen = terminal.expect("Esc cancels").to_owned();
    let billing = screen.find("specs/billing.md").expect(&screen);
    let feature = screen.find("specs/feature.md").expect(&screen);
    let archive = screen.find("specs/archive.md").expect(&screen);
    assert!(
        billing < feature && feature < archive,
        "newest first: {screen}"
    );
    assert!(
        screen.contains("In Progress  updated 2026-11-28"),
        "{screen}"
    );
    assert!(
        !screen.contains("feature-plan.md"),
        "plans are not specs: {screen}"
    );
    assert!(
        !screen.contains("specs/shipped.md"),
        "a spec whose plan is finished is not offered: {screen}"
    );
    // Typed words filter; Enter (a carriage return on a terminal) takes the highlighted one.
    terminal.type_keys("archve");
    terminal.type_keys("\r");
    let (status, screen) = terminal.end();
    assert_eq!(status, Some(0), "{screen}");
    assert!(screen.contains("picked specs/archive.md"), "{screen}");
    assert!(
        screen.contains("@specs/archive.md"),
        "the prompt of the pick: {screen}"
    );

    // Esc cancels: nothing is picked, nothing runs.
    let mut terminal = Terminal::start(&project, "run --no-worktree", &[("TERM", "xterm")]);
    terminal.expect("Esc cancels");
    terminal.type_keys("\x1b");
    let (status, screen) = terminal.end();
    assert_eq!(status, Some(1), "{screen}");
    assert!(screen.contains("no spec picked"), "{screen}");
    assert!(!screen.contains("created run"), "{screen}");
}

#[test]
fn the_line_picker_labels_its_columns_and_words_or_a_number_pick() {
    if !have_script() {
        eprintln!("skipped: no `script` to make a pseudo-terminal");
        return;
    }
    let project = Project::new(&stub("one_task.sh"), 1);
    three_specs(&project);
    // A terminal that cannot draw the fuzzy picker gets the line dialogue.
    let mut terminal = Terminal::start(&project, "prompt", &[("TERM", "dumb")]);
    let screen = terminal.expect("Ctrl-D to stop").to_owned();
    let header = screen
        .lines()
        .find(|line| line.contains("UPDATED"))
        .expect(&screen);
    for label in ["#", "STATUS", "SPEC", "TITLE"] {
        assert!(header.contains(label), "{label} in {header:?}");
    }
    let billing = screen.find("specs/billing.md").expect(&screen);
    let feature = screen.find("specs/feature.md").expect(&screen);
    let archive = screen.find("specs/archive.md").expect(&screen);
    assert!(
        billing < feature && feature < archive,
        "newest first: {screen}"
    );
    assert!(screen.contains("2026-11-28  In Progress"), "{screen}");
    assert!(
        !screen.contains("specs/shipped.md"),
        "a spec whose plan is finished is not offered: {screen}"
    );
    terminal.type_keys("archive\n");
    let (status, screen) = terminal.end();
    assert_eq!(status, Some(0), "{screen}");
    assert!(screen.contains("picked specs/archive.md"), "{screen}");
    assert!(screen.contains("@specs/archive.md"), "{screen}");

    // `run` picks by number and creates the run.
    let mut terminal = Terminal::start(&project, "run --no-worktree", &[("TERM", "dumb")]);
    terminal.expect("Ctrl-D to stop");
    terminal.type_keys("2\n");
    let (status, screen) = terminal.end();
    assert_eq!(status, Some(0), "{screen}");
    assert!(screen.contains("picked specs/feature.md"), "{screen}");
    assert!(screen.contains("created run"), "{screen}");
}

#[test]
fn in_the_line_picker_an_empty_line_picks_nothing() {
    if !have_script() {
        eprintln!("skipped: no `script` to make a pseudo-terminal");
        return;
    }
    let project = Project::new(&stub("one_task.sh"), 1);
    let mut terminal = Terminal::start(&project, "run --no-worktree", &[("TERM", "dumb")]);
    terminal.expect("Ctrl-D to stop");
    terminal.type_keys("\n");
    terminal.expect("an empty line picks nothing");
    // Ctrl-D: the end of input, on a terminal.
    terminal.type_keys("\x04");
    let (status, screen) = terminal.end();
    assert_eq!(status, Some(1), "{screen}");
    assert!(!screen.contains("picked specs/"), "{screen}");
    assert!(screen.contains("no spec picked"), "{screen}");
    assert!(!screen.contains("created run"), "no run started: {screen}");
    let runs = project.json(&["list"]);
    assert_eq!(runs["runs"], serde_json::json!([]));
}
