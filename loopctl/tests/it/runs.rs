//! `run`, `list`, `inspect`, the state changes and `wait`, against a real daemon.

use loop_api::runs::RunEnvelope;
use loop_core::RunStatus;
use loop_core::event::ExitReason;

use crate::daemon::{Project, run_of, stub};
use crate::support::text;

#[test]
fn run_wait_exits_0_for_a_completed_run_and_1_for_a_failed_one() {
    let project = Project::new(&stub("one_task.sh"), 2);
    let done = project.loopctl(&["run", "specs/feature.md", "--no-worktree", "--wait"]);
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    let stdout = text(&done.stdout);
    assert!(stdout.contains("COMPLETED (complete_plan)"), "{stdout}");
    assert!(stdout.contains("2/2 tasks"), "{stdout}");
    assert_eq!(
        stdout.lines().count(),
        1,
        "only the verdict on stdout: {stdout}"
    );

    // A config file (given with --config, read by loopctl) swaps in an agent that does nothing.
    project.fresh_plan(2);
    let failing = project.scratch.dir.path().join("idle.conf");
    std::fs::write(&failing, format!("agent_cmd={}\n", stub("idle.sh"))).expect("config");
    let spec = project.root().join("specs/feature.md");
    let failed = project.loopctl(&[
        "run",
        spec.to_str().expect("utf-8"),
        "--no-worktree",
        "--wait",
        "--iterations",
        "1",
        "--config",
        failing.to_str().expect("utf-8"),
        "--json",
    ]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed.stderr));
    let run: RunEnvelope = serde_json::from_slice(&failed.stdout).expect("one run document");
    assert_eq!(run.run.status, RunStatus::Failed);
    assert_eq!(run.run.exit_reason, Some(ExitReason::IterationsExhausted));

    // `wait` on a run that already ended answers at once, with the same exit status.
    let id = run.run.id.to_string();
    let again = project.loopctl(&["wait", &id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stdout).contains("FAILED"),
        "{}",
        text(&again.stdout)
    );
}

#[test]
fn run_wait_demo_and_exec_print_the_same_document_for_a_run() {
    let project = Project::new(&stub("one_task.sh"), 1);
    let waited = project.json(&["run", "specs/feature.md", "--no-worktree", "--wait"]);

    let dir = tempfile::tempdir().expect("temp dir");
    let demo = std::process::Command::new(env!("CARGO_BIN_EXE_loopctl"))
        .args(["demo", "--json", "--dir"])
        .arg(dir.path().join("tour"))
        .env_remove("LOOP_CONFIG")
        .output()
        .expect("run demo");
    assert!(demo.status.success(), "{}", text(&demo.stderr));
    let demo: serde_json::Value = serde_json::from_slice(&demo.stdout).expect("one document");

    project.fresh_plan(1);
    let db = project.scratch.dir.path().join("exec.db");
    let exec = project
        .command(&[
            "exec",
            "specs/feature.md",
            "--no-worktree",
            "--json",
            "--db",
        ])
        .arg(&db)
        .output()
        .expect("run exec");
    assert!(exec.status.success(), "{}", text(&exec.stderr));
    let exec: serde_json::Value = serde_json::from_slice(&exec.stdout).expect("one document");

    let keys = |document: &serde_json::Value| -> Vec<String> {
        let run = document["run"].as_object().expect("a run under \"run\"");
        run.keys().cloned().collect()
    };
    assert_eq!(keys(&demo), keys(&waited), "demo: {demo}");
    assert_eq!(keys(&exec), keys(&waited), "exec: {exec}");
    for document in [&waited, &demo, &exec] {
        assert_eq!(run_of(document).status, RunStatus::Completed, "{document}");
    }
    // The demo adds where its files are, beside the run.
    assert!(
        std::path::Path::new(demo["run_dir"].as_str().expect("run_dir"))
            .join("summary.json")
            .is_file(),
        "{demo}"
    );
}

#[test]
fn list_and_inspect_show_tables_for_people_and_documents_for_scripts() {
    let project = Project::new(&stub("one_task.sh"), 1);
    let id = project.create(&["--name", "tidy-otter"]);
    project.wait(&id);

    let list = project.loopctl(&["list"]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    let table = text(&list.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    for column in [
        "ID",
        "NAME",
        "STATUS",
        "TASKS",
        "COST",
        "CREATED",
        "WORKSPACE",
    ] {
        assert!(lines[0].contains(column), "{table}");
    }
    assert!(lines[1].starts_with(&id[..8]), "{table}");
    for value in [
        "tidy-otter",
        "COMPLETED",
        "1/1",
        "$0.00",
        "just now",
        "repo",
    ] {
        assert!(lines[1].contains(value), "{value} in {table}");
    }
    // Columns line up: STATUS starts at the same place in the header and the row.
    assert_eq!(
        lines[0].find("STATUS"),
        lines[1].find("COMPLETED"),
        "{table}"
    );
    assert!(
        !table.contains('\x1b'),
        "no colour off a terminal: {table:?}"
    );

    let listed = project.json(&["list", "--workspace"]);
    assert_eq!(listed["runs"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["runs"][0]["id"], id.as_str());
    assert!(listed["next"].is_null());
    let none = project.json(&["list", "--status", "failed"]);
    assert_eq!(none["runs"].as_array().map(Vec::len), Some(0));

    let inspect = project.loopctl(&["inspect", "tidy-otter"]);
    assert!(inspect.status.success(), "{}", text(&inspect.stderr));
    let shown = text(&inspect.stdout);
    for expected in [
        id.as_str(),
        "COMPLETED (complete_plan)",
        "specs/planning/feature-plan.md",
        "none (works in the workspace)",
        "iteration 1 · tasks 1/1",
        "PHASE",
        "DURATION",
        "implementation",
        "SUCCEEDED",
        "files in ",
        "summary.json",
        "iter-01-impl.log",
    ] {
        assert!(shown.contains(expected), "{expected:?} in {shown}");
    }
    let document = project.json(&["inspect", &id]);
    assert_eq!(run_of(&document).id.to_string(), id);
    // One implementation step did the plan's one task; no call to say COMPLETE.
    assert_eq!(document["steps"].as_array().map(Vec::len), Some(1));
    let run_dir = document["run_dir"].as_str().expect("run dir");
    assert!(
        std::path::Path::new(run_dir).join("summary.json").is_file(),
        "{run_dir}"
    );
    assert!(
        document["artifacts"]
            .as_array()
            .expect("artifacts")
            .iter()
            .any(|a| a["name"] == "summary.json")
    );
}

#[test]
fn runs_are_named_by_id_prefix_or_name_and_an_ambiguous_one_is_an_error() {
    let project = Project::new(&stub("one_task.sh"), 1);
    let alpha = project.create(&["--name", "alpha"]);
    // Alpha does the plan's one task in the checkout itself; beta needs one to do.
    project.wait(&alpha);
    project.fresh_plan(1);
    let beta = project.create(&["--name", "beta"]);
    project.wait(&beta);

    assert_eq!(project.run(&["inspect", "beta"]).id.to_string(), beta);
    let prefix = &alpha[..alpha.len() - 6];
    assert_eq!(project.run(&["inspect", prefix]).id.to_string(), alpha);
    assert_eq!(project.run(&["inspect", &alpha]).name, "alpha");

    let common = alpha
        .chars()
        .zip(beta.chars())
        .take_while(|(a, b)| a == b)
        .count();
    let ambiguous = project.loopctl(&["inspect", &alpha[..common.max(1)]]);
    assert_eq!(ambiguous.status.code(), Some(1));
    let error = text(&ambiguous.stderr);
    assert!(error.contains("names 2 runs"), "{error}");
    assert!(error.contains("alpha") && error.contains("beta"), "{error}");
    assert_eq!(error.lines().count(), 1, "{error}");

    let unknown = project.loopctl(&["tail", "nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("no run matches \"nope\""),
        "{}",
        text(&unknown.stderr)
    );
    let missing = project.loopctl(&["inspect", "01234567-89ab-7def-8123-456789abcdef"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("`loopctl list` shows the runs"),
        "{}",
        text(&missing.stderr)
    );
}

#[test]
fn state_changes_say_the_new_state_and_an_illegal_one_names_the_current() {
    // sleep_once.sh sleeps through its first call, then does the plan's task.
    let project = Project::new(&stub("sleep_once.sh"), 1);
    let id = project.create(&["--name", "sleepy"]);
    crate::daemon::until("the first step", std::time::Duration::from_secs(10), || {
        project.run(&["inspect", &id]).current_step.is_some()
    });

    let paused = project.loopctl(&["pause", "sleepy", "--now"]);
    assert!(paused.status.success(), "{}", text(&paused.stderr));
    assert_eq!(
        text(&paused.stdout).trim(),
        format!("run {id} (sleepy) is PAUSED")
    );
    let illegal = project.loopctl(&["pause", "sleepy"]);
    assert_eq!(illegal.status.code(), Some(1));
    let error = text(&illegal.stderr);
    assert!(
        error.contains("cannot pause a run that is PAUSED"),
        "{error}"
    );
    assert_eq!(error.lines().count(), 1, "{error}");

    assert_eq!(
        project.run(&["resume", "sleepy"]).status,
        RunStatus::Running
    );
    let waited = project.loopctl(&["wait", "sleepy"]);
    assert_eq!(waited.status.code(), Some(0), "{}", text(&waited.stderr));
    assert!(text(&waited.stdout).contains("COMPLETED"));

    let illegal = project.loopctl(&["cancel", "sleepy"]);
    assert_eq!(illegal.status.code(), Some(1));
    assert!(
        text(&illegal.stderr).contains("cannot cancel a run that is COMPLETED"),
        "{}",
        text(&illegal.stderr)
    );
}

#[test]
fn a_run_flag_reaches_the_frozen_config_through_the_daemon() {
    let project = Project::new(&stub("one_task.sh"), 1);
    let id = project.create(&["--max-cost", "0.5", "--verify-cmd", "false || true"]);
    let events = project.json(&["events", &id]);
    let created = &events["events"][0]["payload"]["config"];
    assert_eq!(created["max_cost_usd"], "0.5", "{created}");
    // One command per line, kept whole: `||` is the shell's, not a separator.
    assert_eq!(created["verify_cmds"], "false || true\n", "{created}");
}

#[test]
fn agent_cmd_and_run_naming_mode_flags_reach_the_frozen_config() {
    let project = Project::new(&stub("one_task.sh"), 1);
    let agent = stub("chatty.sh");
    let id = project.create(&["--agent-cmd", &agent, "--run-naming-mode", "spec_slug"]);
    let events = project.json(&["events", &id]);
    let created = &events["events"][0]["payload"]["config"];
    assert_eq!(created["agent_cmd"], agent.as_str(), "{created}");
    assert_eq!(created["run_naming_mode"], "spec_slug", "{created}");
    // --agent-cmd sets that key alone: the adapter is still the config's.
    assert_eq!(created["agent"], "command", "{created}");
    project.wait(&id);

    // The contract's spelling, --name-source, is the same flag.
    project.fresh_plan(1);
    let id = project.create(&["--name-source", "spec_slug"]);
    let events = project.json(&["events", &id]);
    assert_eq!(
        events["events"][0]["payload"]["config"]["run_naming_mode"],
        "spec_slug"
    );
    project.wait(&id);
}

#[test]
fn inspect_shows_what_the_agent_said_of_its_calls() {
    let project = Project::new(&stub("one_task.sh"), 1);
    // Claude Code's stream, replayed by the stub: a window that rejected the request and
    // overage that served it, as real CLIs print it.
    std::fs::write(
        project.root().join(".loop/config"),
        format!(
            "agent=claude\nclaude_bin={}\nreviewer=false\npostmortem=false\n\
             run_naming_mode=spec_slug\n",
            loop_testkit::agents::path("claude_stub.sh").display()
        ),
    )
    .expect("config");
    std::fs::write(project.root().join(".stub-plan"), "overage\n").expect("stub plan");
    let run = project.create(&[]);
    assert_eq!(project.wait(&run)["status"], "COMPLETED");
    let inspect = project.loopctl(&["inspect", &run]);
    let shown = text(&inspect.stdout);
    assert!(
        shown.contains("what the agent said of its calls"),
        "{shown}"
    );
    assert!(shown.contains("five_hour window rejected"), "{shown}");
    assert!(shown.contains("served from overage"), "{shown}");
    let json = project.json(&["inspect", &run]);
    let step = &json["steps"][0];
    assert_eq!(
        step["agent"]["rate_limit"]["overage_in_use"], true,
        "{step}"
    );
    assert!(step["agent"]["session_id"].is_string(), "{step}");
}
