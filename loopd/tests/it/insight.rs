//! Postmortems on demand, the figures across runs, and the daemon's structured logs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{client, repo, run_body, start_daemon, submit, wait_for_end};

#[test]
fn a_postmortem_on_demand_runs_in_the_background_and_lists_its_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let client = client();
    let id = submit(&daemon, &run_body(&repo, "one_task.sh", json!({})));
    assert_eq!(wait_for_end(&daemon, &id)["status"], "COMPLETED");

    let before: Value = client
        .get(daemon.url(&format!("/runs/{id}/postmortem")))
        .send()
        .expect("get")
        .json()
        .expect("json");
    assert_eq!(before["postmortem"]["status"], Value::Null, "{before}");

    let started = client
        .post(daemon.url(&format!("/runs/{id}/postmortem")))
        .json(&json!({"prompt_only": true, "model": "sonnet"}))
        .send()
        .expect("post");
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let started: Value = started.json().expect("json");
    assert_eq!(started["postmortem"]["started_because"], "prompt only");

    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let report: Value = client
            .get(daemon.url(&format!("/runs/{id}/postmortem")))
            .send()
            .expect("get")
            .json()
            .expect("json");
        if report["postmortem"]["status"] != "running" {
            break report["postmortem"].clone();
        }
        assert!(Instant::now() < deadline, "the postmortem ends");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(report["status"], "skipped", "{report}");
    let names: Vec<&str> = report["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "git-diff.patch",
            "git-last-commit.patch",
            "git-last-commit.txt",
            "git-status.txt",
            "run-quality.prompt.txt",
            "spec-compliance.prompt.txt",
            "summary.prompt.txt",
        ]
    );
    // The run itself is untouched, and its artifacts include the analysis files.
    let run: Value = client
        .get(daemon.url(&format!("/runs/{id}")))
        .send()
        .expect("get")
        .json()
        .expect("json");
    assert_eq!(run["run"]["status"], "COMPLETED");
    assert_eq!(run["run"]["postmortem"], "skipped");
    let prompt = client
        .get(daemon.url(&format!("/runs/{id}/artifacts/analysis/summary.prompt.txt")))
        .send()
        .expect("artifact");
    assert_eq!(prompt.status(), StatusCode::OK);

    // Errors: a bad field, an unknown run.
    let bad = client
        .post(daemon.url(&format!("/runs/{id}/postmortem")))
        .json(&json!({"prompt_only": "yes"}))
        .send()
        .expect("post");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let unknown = client
        .post(daemon.url(&format!("/runs/{}/postmortem", uuid_like())))
        .send()
        .expect("post");
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

fn uuid_like() -> &'static str {
    "01996c87-7c00-7a3e-9d2f-5b6c1e0f4a21"
}

#[test]
fn stats_count_runs_by_outcome_in_a_time_window_and_a_workspace() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let client = client();
    let failing = submit(
        &daemon,
        &run_body(&repo, "one_task.sh", json!({"agent_cmd": "exit 3"})),
    );
    assert_eq!(wait_for_end(&daemon, &failing)["status"], "FAILED");
    let done = submit(&daemon, &run_body(&repo, "one_task.sh", json!({})));
    assert_eq!(wait_for_end(&daemon, &done)["status"], "COMPLETED");

    let stats = |query: &str| -> Value {
        let response = client
            .get(daemon.url(&format!("/stats{query}")))
            .send()
            .expect("stats");
        assert_eq!(response.status(), StatusCode::OK, "{query}");
        response.json::<Value>().expect("json")["stats"].clone()
    };
    let all = stats("");
    assert_eq!(all["runs"]["total"], 2, "{all}");
    assert_eq!(all["runs"]["completed"], 1);
    assert_eq!(all["runs"]["failed"], 1);
    // A command agent fails as itself, not as Claude Code.
    assert_eq!(all["runs"]["by_exit_reason"]["agent_failed"], 1);
    // One task, one iteration: a finished, verified plan completes without another call.
    assert_eq!(all["iterations_to_completion"]["max"], 1);
    assert_eq!(all["tasks_done"], 1);
    let workspace = repo.to_string_lossy().into_owned();
    let recent = stats(&format!("?since=1h&workspace_root={workspace}"));
    assert_eq!(recent["runs"]["total"], 2);
    assert!(recent["since_ms"].is_i64(), "{recent}");
    assert_eq!(stats("?workspace_root=/elsewhere")["runs"]["total"], 0);

    let bad = client
        .get(daemon.url("/stats?since=soon"))
        .send()
        .expect("stats");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let body: Value = bad.json().expect("json");
    assert!(
        body["error"].as_str().unwrap_or("").contains("since"),
        "{body}"
    );
}

#[test]
fn json_logs_carry_the_run_id_and_a_bad_format_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let mut child = Command::new(env!("CARGO_BIN_EXE_loopd"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("LOOPD_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env_remove("LOOPD_AUTH_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loopd");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut first = String::new();
    stderr.read_line(&mut first).expect("first line");
    let base = first
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .expect("the address comes first")
        .to_owned();
    let lines = std::thread::spawn(move || {
        stderr
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let created: Value = client()
        .post(format!("{base}/runs"))
        .json(&run_body(&repo, "one_task.sh", json!({})))
        .send()
        .expect("create")
        .json()
        .expect("json");
    let id = crate::support::run_id(&created);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run: Value = client()
            .get(format!("{base}/runs/{id}"))
            .send()
            .expect("get")
            .json()
            .expect("json");
        if run["run"]["status"] == "COMPLETED" {
            break;
        }
        assert!(Instant::now() < deadline, "the run ends");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    assert!(child.wait().expect("exit").success());
    let lines = lines.join().expect("stderr read");
    let ended: Vec<Value> = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == "run ended")
        .collect();
    assert_eq!(ended.len(), 1, "{lines:#?}");
    assert_eq!(ended[0]["fields"]["run_id"], id.as_str());
    assert_eq!(ended[0]["fields"]["event_type"], "RUN_COMPLETED");
    assert_eq!(ended[0]["level"], "INFO");
    // Inside the run's span: the driver's lines name the run twice over.
    assert_eq!(ended[0]["span"]["run_id"], id.as_str(), "{}", ended[0]);

    let refused = Command::new(env!("CARGO_BIN_EXE_loopd"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("other"))
        .env("LOOPD_LOG_FORMAT", "xml")
        .output()
        .expect("run loopd");
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("LOOPD_LOG_FORMAT"));
}
