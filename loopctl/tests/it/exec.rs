//! `exec` and `prompt`: the commands that run the engine in-process, no daemon.

use std::process::{Command, Output};

use crate::support::text;

use loop_testkit::Scratch as Repo;

/// A git repository with a plan of two tasks whose `.loop/config` runs the stub `agent`.
fn repo(agent: &str, extra_config: &str) -> Repo {
    let config = format!(
        "agent=command\nagent_cmd={}\nreviewer=false\npostmortem=false\n{extra_config}",
        loop_testkit::agents::cmd(agent)
    );
    Repo::with(|repo| repo.tasks(2).config(&config))
}

fn loopctl_in(repo: &Repo, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loopctl"))
        .args(args)
        .current_dir(repo.repo())
        .env("LOOPD_DATA_DIR", repo.dir.path().join("data"))
        .env_remove("LOOP_CONFIG")
        .output()
        .expect("run loopctl")
}

#[test]
fn exec_runs_a_loop_to_completion_and_exits_0() {
    let repo = repo("one_task.sh", "verify_cmds=test -f work.txt\n");
    let db = repo.db();
    let output = loopctl_in(
        &repo,
        &[
            "exec",
            "specs/feature.md",
            "--no-worktree",
            "--db",
            db.to_str().expect("utf-8"),
        ],
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.contains("Implemented the next task."), "{stdout}");
    assert!(
        stderr.contains("── implementation · iteration 1 · attempt 1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("COMPLETED (complete_plan); 2 of 2 tasks"),
        "{stderr}"
    );

    // The run directory's projections are what `export` writes from the log alone.
    let run_dir = std::fs::read_dir(repo.repo().join("logs/loop"))
        .expect("log dir")
        .next()
        .expect("a run dir")
        .expect("entry")
        .path();
    let run_id = run_dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("run-"))
        .expect("run-<id>")
        .to_owned();
    let out = repo.dir.path().join("export");
    let export = loopctl_in(
        &repo,
        &[
            "export",
            &run_id,
            "--db",
            db.to_str().expect("utf-8"),
            "--out",
            out.to_str().expect("utf-8"),
        ],
    );
    assert!(export.status.success(), "{}", text(&export.stderr));
    for name in ["report.tsv", "summary.json", "run.log", "events.jsonl"] {
        let exported = std::fs::read(out.join(name)).expect(name);
        let written = std::fs::read(run_dir.join(name)).expect(name);
        assert!(
            exported == written,
            "{name} differs between the run dir and export"
        );
    }
    let replay = loopctl_in(&repo, &["replay", "--db", db.to_str().expect("utf-8")]);
    assert!(replay.status.success(), "{}", text(&replay.stdout));
}

#[test]
fn exec_json_is_one_document_and_a_failed_run_exits_1() {
    let repo = repo("claims_early.sh", "iterations=1\n");
    let db = repo.db();
    let output = loopctl_in(
        &repo,
        &[
            "--json",
            "exec",
            "specs/feature.md",
            "--no-worktree",
            "--db",
            db.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let document: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON document");
    // The document of `loopctl run --wait`.
    let run = &document["run"];
    assert_eq!(run["status"], "FAILED", "{document}");
    assert_eq!(run["exit_reason"], "iterations_exhausted");
}

#[test]
fn exec_refuses_a_bad_config_naming_file_line_and_key() {
    let repo = repo("one_task.sh", "iterations=lots\n");
    let db = repo.db();
    let output = loopctl_in(
        &repo,
        &[
            "exec",
            "specs/feature.md",
            "--no-worktree",
            "--db",
            db.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains(".loop/config:5: iterations:"), "{stderr}");
}

#[test]
fn prompt_prints_the_first_prompt_with_the_next_task() {
    let repo = repo("one_task.sh", "context_files=docs/api.md\n");
    let output = loopctl_in(&repo, &["prompt", "feature.md"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let prompt = text(&output.stdout);
    assert!(prompt.contains("@specs/feature.md"), "{prompt}");
    assert!(
        prompt.contains("@specs/planning/feature-plan.md"),
        "{prompt}"
    );
    assert!(prompt.contains("@docs/api.md"), "{prompt}");
    assert!(prompt.contains("(line 3 of the plan): task 1"), "{prompt}");
}

#[test]
fn exec_beside_a_daemon_hands_the_run_to_it_and_it_completes() {
    let repo = repo("one_task.sh", "run_naming_mode=spec_slug\n");
    let data = repo.dir.path().join("data");
    let daemon = crate::daemon::start_daemon(&data, "127.0.0.1:0", &[]);
    let db = data.join("loopd.db");
    let output = loopctl_in(
        &repo,
        &[
            "exec",
            "specs/feature.md",
            "--no-worktree",
            "--db",
            db.to_str().expect("utf-8"),
        ],
    );
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("handing the run to it"), "{stderr}");
    assert!(stderr.contains(&daemon.base), "names the daemon: {stderr}");
    // The daemon drove it: one run in its log, COMPLETED, no step finished twice.
    drop(daemon);
    let store = loop_store::SqliteStore::open(&db).expect("log");
    let runs =
        loop_store::EventStore::list_runs(&store, &loop_store::RunQuery::default()).expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].status,
        loop_core::RunStatus::Completed,
        "{:?}",
        runs[0]
    );
    let report = loop_store::replay(&store, None).expect("replay");
    assert!(report.differences.is_empty(), "{:?}", report.differences);
}

#[test]
fn a_second_exec_on_the_same_data_dir_is_refused_naming_the_first() {
    let repo = repo("sleep_once.sh", "run_naming_mode=spec_slug\n");
    let db = repo.db();
    let mut first = Command::new(env!("CARGO_BIN_EXE_loopctl"))
        .args(["exec", "specs/feature.md", "--no-worktree", "--db"])
        .arg(&db)
        .current_dir(repo.repo())
        .env("LOOPD_DATA_DIR", repo.dir.path().join("data"))
        .env_remove("LOOP_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("first exec");
    // The first holds the lock once its run has started.
    let lock = db.with_file_name("loopd.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_to_string(&lock)
        .unwrap_or_default()
        .contains("loopctl exec")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the first exec never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let second = loopctl_in(
        &repo,
        &[
            "exec",
            "specs/feature.md",
            "--no-worktree",
            "--db",
            db.to_str().expect("utf-8"),
        ],
    );
    let _ = first.kill();
    let _ = first.wait();
    assert!(!second.status.success());
    let stderr = text(&second.stderr);
    assert!(
        stderr.contains("in use by another loopctl exec"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("pid {}", first.id())), "{stderr}");
}

#[test]
fn ctrl_c_in_exec_interrupts_the_step_and_a_daemon_on_the_data_dir_finishes_the_run() {
    let repo = repo("sleep_once.sh", "run_naming_mode=spec_slug\n");
    let data = repo.dir.path().join("data");
    let db = data.join("loopd.db");
    let exec = Command::new(env!("CARGO_BIN_EXE_loopctl"))
        .args(["exec", "specs/feature.md", "--no-worktree", "--db"])
        .arg(&db)
        .current_dir(repo.repo())
        .env_remove("LOOP_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start exec");
    // The agent's first call sleeps; once it has begun, the person presses Ctrl-C.
    let runs = repo.repo().join("logs/loop");
    loop_testkit::until(
        "the agent started",
        std::time::Duration::from_secs(20),
        || {
            std::fs::read_dir(&runs)
                .into_iter()
                .flatten()
                .flatten()
                .any(|run| run.path().join("slept").exists())
        },
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(exec.id()).expect("pid")),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let output = exec.wait_with_output().expect("exec ends");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("stays RUNNING") && stderr.contains("loopd --data-dir"),
        "{stderr}"
    );
    {
        let store = loop_store::SqliteStore::open(&db).expect("log");
        let runs = loop_store::EventStore::list_runs(&store, &loop_store::RunQuery::default())
            .expect("runs");
        assert_eq!(runs[0].status, loop_core::RunStatus::Running);
        let steps = loop_store::EventStore::steps(&store, runs[0].id).expect("steps");
        assert_eq!(
            steps[0].status,
            loop_core::event::StepStatus::Interrupted,
            "{steps:?}"
        );
    }

    // A daemon on the same data dir takes the run up and finishes it.
    let daemon = crate::daemon::start_daemon(&data, "127.0.0.1:0", &[]);
    let client = loop_client::blocking::Client::new(&daemon.base, None).expect("a client");
    let store = loop_store::SqliteStore::open(&db).expect("log");
    let id = loop_store::EventStore::list_runs(&store, &loop_store::RunQuery::default())
        .expect("runs")[0]
        .id;
    let done = client.wait(id).expect("the run ends");
    assert_eq!(done.status, loop_core::RunStatus::Completed, "{done:?}");
}
