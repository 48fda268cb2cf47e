//! Output and events, once and followed live: `tail`, `events`, `run --follow`, and following
//! across a daemon restart.

use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use loop_api::runs::RunEnvelope;
use loop_core::RunStatus;

use crate::daemon::{Project, collect, run_of, start_daemon, stub, until};
use crate::support::text;

#[test]
fn run_follow_shows_every_step_once_with_status_lines_on_stderr() {
    let project = Project::new(&stub("chatty.sh"), 2);
    let output = project.loopctl(&[
        "run",
        "specs/feature.md",
        "--no-worktree",
        "--name",
        "chatty",
        "--follow",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let id = project.run(&["inspect", "chatty"]).id.to_string();
    let logs: String = project
        .step_logs(&id)
        .into_iter()
        .map(|(_, log)| log)
        .collect();
    assert_eq!(
        text(&output.stdout),
        logs,
        "stdout is exactly the steps' output"
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("── implementation · iteration 1 · attempt 1 ·"),
        "{stderr}"
    );
    assert!(
        stderr.contains("── implementation · iteration 2"),
        "{stderr}"
    );
    assert!(stderr.contains(" elapsed · 1/2 tasks"), "{stderr}");
    assert!(stderr.contains("COMPLETED (complete_plan)"), "{stderr}");

    // The same under --json: one line per chunk, then the run.
    project.fresh_plan(2);
    let output = project.loopctl(&[
        "run",
        "specs/feature.md",
        "--no-worktree",
        "--follow",
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let lines: Vec<Value> = text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let (last, chunks) = lines.split_last().expect("lines");
    let last = run_of(last);
    assert_eq!(last.status, RunStatus::Completed);
    assert!(!chunks.is_empty());
    let id = last.id.to_string();
    let shown: String = chunks
        .iter()
        .map(|chunk| chunk["content"].as_str().expect("content"))
        .collect();
    let logs: String = project
        .step_logs(&id)
        .into_iter()
        .map(|(_, log)| log)
        .collect();
    assert_eq!(shown, logs);
}

#[test]
fn tail_and_events_of_a_finished_run() {
    let project = Project::new(&stub("one_task.sh"), 1);
    let id = project.create(&["--name", "tidy"]);
    project.wait(&id);

    // `tail` is the last step's output; -f follows from there to the end. The plan's one task
    // done and verified completes the run: the last step is the one that did it.
    let tail = project.loopctl(&["tail", "tidy"]);
    assert!(tail.status.success(), "{}", text(&tail.stderr));
    assert_eq!(
        text(&tail.stdout),
        "Implemented the next task.\nDONE: task 1\n"
    );
    let followed = project.loopctl(&["tail", "-f", "tidy"]);
    assert!(followed.status.success());
    assert_eq!(text(&followed.stdout), text(&tail.stdout));
    assert!(text(&followed.stderr).contains("COMPLETED"));
    let json = project.loopctl(&["tail", "tidy", "--json"]);
    let chunk: Value = serde_json::from_str(text(&json.stdout).lines().next().expect("a line"))
        .expect("a JSON line");
    assert_eq!(chunk["offset"], 0);
    assert!(chunk["step_id"].is_string());
    assert!(
        chunk["content"]
            .as_str()
            .expect("content")
            .contains("DONE: task 1")
    );

    // `events`: one line per event for people, one document for scripts.
    let events = project.loopctl(&["events", "tidy"]);
    assert!(events.status.success());
    let shown = text(&events.stdout);
    let first = shown.lines().next().expect("a line");
    assert!(first.contains("RUN_CREATED"), "{shown}");
    assert!(
        shown
            .lines()
            .last()
            .expect("a line")
            .contains("RUN_COMPLETED"),
        "{shown}"
    );
    let all = project.json(&["events", "tidy"]);
    let all = all["events"].as_array().expect("events").clone();
    assert_eq!(all.len(), shown.lines().count());
    let second = all[1]["seq"].as_u64().expect("seq");
    let later = project.json(&["events", "tidy", "--after", &second.to_string()]);
    assert_eq!(
        later["events"].as_array().map(Vec::len),
        Some(all.len() - 2)
    );

    // -f on a finished run replays it and ends; --json makes it JSON lines.
    let followed = project.loopctl(&["events", "tidy", "-f", "--json"]);
    assert!(followed.status.success(), "{}", text(&followed.stderr));
    let lines: Vec<Value> = text(&followed.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(lines, all);
}

/// A stub that prints ten numbered lines over a second, then does one task like one_task.sh.
fn slow_agent(dir: &std::path::Path) -> String {
    let path = dir.join("slow.sh");
    std::fs::write(
        &path,
        format!(
            "cat > /dev/null\n\
             for i in 1 2 3 4 5 6 7 8 9 10; do echo \"iteration $LOOP_ITERATION line $i\"; sleep 0.1; done\n\
             exec {}\n",
            stub("one_task.sh")
        ),
    )
    .expect("stub");
    format!("sh {}", path.display())
}

#[test]
fn follow_goes_on_across_a_daemon_restart_without_losing_or_repeating_output() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let mut project = Project::new(&slow_agent(scratch.path()), 2);
    // The restarted daemon must answer at the same address: a port picked now, held by neither.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let data = project.scratch.dir.path().join("data-fixed");
    let listen = format!("127.0.0.1:{port}");
    project.daemon = start_daemon(&data, &listen, &[]);

    let mut follower = project
        .command(&[
            "run",
            "specs/feature.md",
            "--no-worktree",
            "--name",
            "restarted",
            "--follow",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loopctl");
    let stdout = collect(follower.stdout.take().expect("stdout"));
    let stderr = collect(follower.stderr.take().expect("stderr"));

    // Stop the daemon in the middle of the second step, then start another on the same port.
    until("the second step", Duration::from_secs(15), || {
        let run = project.loopctl(&["inspect", "restarted", "--json"]);
        serde_json::from_slice::<RunEnvelope>(&run.stdout)
            .is_ok_and(|run| run.run.current_step.is_some_and(|step| step.iteration == 2))
    });
    std::thread::sleep(Duration::from_millis(350));
    project.daemon.stop();
    std::thread::sleep(Duration::from_millis(300));
    project.daemon = start_daemon(&data, &listen, &[]);

    let status = follower.wait().expect("loopctl ends");
    let stdout = stdout.join().expect("stdout");
    let stderr = stderr.join().expect("stderr");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("reconnecting"), "{stderr}");
    assert!(stderr.contains("COMPLETED"), "{stderr}");

    let run = project.json(&["inspect", "restarted"]);
    let id = run_of(&run).id.to_string();
    let statuses: Vec<&str> = run["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["status"].as_str().expect("status"))
        .collect();
    assert!(statuses.contains(&"INTERRUPTED"), "{statuses:?}");
    // Every finished step's output is shown once and in order; before the step that was run
    // again, only a clean prefix of the interrupted attempt (whose log the new attempt rewrote).
    let mut rest = stdout.as_str();
    for (_, log) in project.step_logs(&id) {
        let at = rest
            .find(&log)
            .unwrap_or_else(|| panic!("{log:?} in {rest:?}"));
        let before = &rest[..at];
        let lines: Vec<&str> = before.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            assert_eq!(
                line.rsplit(' ').next(),
                Some((n + 1).to_string().as_str()),
                "an interrupted attempt shows its lines once, in order: {before:?}"
            );
        }
        rest = &rest[at + log.len()..];
    }
    assert_eq!(rest, "", "nothing after the last step: {stdout}");
    assert_eq!(
        stdout.matches("Implemented the next task.").count(),
        2,
        "{stdout}"
    );
}

#[test]
fn ctrl_c_while_following_says_the_run_goes_on_and_how_to_reattach() {
    // sleep_once.sh prints a line, then sleeps through its first call.
    let project = Project::new(&stub("sleep_once.sh"), 1);
    for args in [
        &[
            "run",
            "specs/feature.md",
            "--no-worktree",
            "--name",
            "patient",
            "--follow",
        ][..],
        &["tail", "patient", "-f"],
    ] {
        let mut follower = project
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start loopctl");
        let mut stdout = std::io::BufReader::new(follower.stdout.take().expect("stdout"));
        let stderr = collect(follower.stderr.take().expect("stderr"));
        // Following for real: the agent's first line is on the screen.
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).expect("a line");
        assert_eq!(line, "thinking\n", "{args:?}");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(follower.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .expect("SIGINT");
        let status = follower.wait().expect("loopctl ends");
        let stderr = stderr.join().expect("stderr");
        assert_eq!(status.code(), Some(130), "{args:?}: {stderr}");
        assert!(stderr.contains("goes on in the daemon"), "{stderr}");
        assert!(
            stderr.contains("`loopctl tail patient --follow`"),
            "{stderr}"
        );
        assert_eq!(
            project.run(&["inspect", "patient"]).status,
            RunStatus::Running,
            "{args:?}: the run goes on"
        );
    }
    let canceled = project.loopctl(&["cancel", "patient"]);
    assert!(canceled.status.success(), "{}", text(&canceled.stderr));
}

#[test]
fn tail_and_events_of_a_queued_run_say_why_it_waits() {
    let scratch =
        loop_testkit::Scratch::with(|repo| repo.tasks(1).command_agent(&stub("hang.sh"), ""));
    let daemon = loop_testkit::Loopd::new(crate::daemon::loopd_bin(), &scratch.data_dir())
        .listen("127.0.0.1:0")
        .args(["--max-concurrency", "1"])
        .start();
    let project = Project { scratch, daemon };
    let busy = project.create(&["--name", "busy"]);
    let queued = project.create(&["--name", "queued"]);

    for args in [["tail", "queued"], ["events", "queued"]] {
        let mut args = args.to_vec();
        if args[0] == "events" {
            args.push("--follow");
        }
        let mut child = project
            .command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start loopctl");
        let stderr = child.stderr.take().expect("stderr");
        let (lines, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = lines.send(line);
            }
        });
        let line = seen
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{args:?} said nothing"));
        assert!(
            line.contains("PENDING (waiting for a slot"),
            "{args:?}: {line}"
        );
        assert!(
            child.try_wait().expect("status").is_none(),
            "{args:?} waits"
        );
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(
        project.run(&["inspect", "queued"]).status,
        RunStatus::Pending
    );
    for run in [&busy, &queued] {
        project.loopctl(&["cancel", run]);
    }
}

/// Issue 23, defect 11: `loopctl tail` printed an agent's terminal escapes as they were, so an
/// agent could clear the person's screen, write over lines already shown, retitle the window or
/// set the clipboard. Now they are removed unless `--raw`; the step's log keeps every byte.
#[test]
fn tail_removes_an_agent_s_terminal_escapes_unless_raw() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("escapes.sh");
    std::fs::write(
        &path,
        format!(
            "cat > /dev/null\n\
             printf 'ok\\n\\033[1A\\033[2Kall tests pass\\033[31m!\\033[0m\\n'\n\
             printf '\\033]0;pwned\\007\\033]52;c;cm0gLXJmIH4=\\007progress 50%%\\rprogress 100%%\\r\\n'\n\
             exec {}\n",
            stub("one_task.sh")
        ),
    )
    .expect("stub");
    let project = Project::new(&format!("sh {}", path.display()), 1);
    let id = project.create(&["--name", "escapes"]);
    project.wait(&id);
    let log = project
        .step_logs(&id)
        .into_iter()
        .map(|(_, log)| log)
        .next_back()
        .expect("a step log");
    assert!(
        log.contains("\u{1b}]52;"),
        "the log keeps every byte: {log:?}"
    );

    let tail = project.loopctl(&["tail", "escapes"]);
    assert!(tail.status.success(), "{}", text(&tail.stderr));
    assert_eq!(
        text(&tail.stdout),
        "ok\nall tests pass!\nprogress 50%\nprogress 100%\n\
         Implemented the next task.\nDONE: task 1\n"
    );
    let followed = project.loopctl(&["tail", "-f", "escapes"]);
    assert!(followed.status.success(), "{}", text(&followed.stderr));
    assert!(!text(&followed.stdout).contains('\u{1b}'));

    let raw = project.loopctl(&["tail", "escapes", "--raw"]);
    assert!(raw.status.success(), "{}", text(&raw.stderr));
    assert_eq!(text(&raw.stdout), log);
}
