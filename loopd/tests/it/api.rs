//! Endpoints, errors and the safety checks.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{client, get_json, repo, run_body, start_daemon, submit, wait_for_end};

mod review;

fn error_of(response: reqwest::blocking::Response) -> (StatusCode, String, String) {
    let status = response.status();
    let body: Value = response.json().expect("errors are JSON");
    (
        status,
        body["code"].as_str().unwrap_or_default().to_owned(),
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn every_error_is_json_with_a_code() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let client = client();

    let health: Value = client
        .get(daemon.url("/health"))
        .send()
        .expect("health")
        .json()
        .expect("json");
    assert_eq!(health["status"], "ok");

    let (status, code, _) = error_of(client.get(daemon.url("/nowhere")).send().expect("send"));
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, code, _) = error_of(client.delete(daemon.url("/health")).send().expect("send"));
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let (status, _, message) = error_of(
        client
            .post(daemon.url("/runs"))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .expect("send"),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("invalid JSON"), "{message}");
    // A body that does not say it is JSON is refused before it is read.
    let (status, code, _) = error_of(
        client
            .post(daemon.url("/runs"))
            .body("{}")
            .send()
            .expect("send"),
    );
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let (status, _, message) = error_of(
        client
            .post(daemon.url("/runs"))
            .json(&json!({"spec_path": "s", "workspace_root": "/", "colour": 1}))
            .send()
            .expect("send"),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("colour"), "names the field: {message}");
    let (status, _, message) = error_of(
        client
            .post(daemon.url("/runs"))
            .json(&json!({"spec_path": "s", "workspace_root": "/", "iterations": "many"}))
            .send()
            .expect("send"),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        message.contains("`iterations`"),
        "names the field: {message}"
    );
    let huge = "x".repeat(1024 * 1024 + 10);
    let (status, code, _) = error_of(
        client
            .post(daemon.url("/runs"))
            .body(huge)
            .send()
            .expect("send"),
    );
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    let (status, code, _) = error_of(
        client
            .get(daemon.url("/runs/not-a-run"))
            .send()
            .expect("send"),
    );
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let repo = repo(dir.path(), 1);
    let (status, _, message) = error_of(
        client
            .post(daemon.url("/runs"))
            .json(&json!({"spec_path": "specs/x.md", "workspace_root": repo}))
            .send()
            .expect("send"),
    );
    assert_eq!(status, StatusCode::NOT_FOUND, "{message}");
    assert!(message.contains("specs/x.md"), "{message}");
}

#[test]
fn a_request_for_another_host_is_misdirected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let response = client()
        .get(daemon.url("/health"))
        .header("Host", "attacker.example:7700")
        .send()
        .expect("send");
    let (status, code, _) = error_of(response);
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::MISDIRECTED_REQUEST, "host_not_allowed")
    );
}

#[test]
fn with_a_token_every_endpoint_but_health_needs_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(
        &dir.path().join("data"),
        &[],
        &[("LOOPD_AUTH_TOKEN", "s3cret")],
    );
    let client = client();
    assert_eq!(
        client
            .get(daemon.url("/health"))
            .send()
            .expect("send")
            .status(),
        StatusCode::OK
    );
    let (status, code, _) = error_of(client.get(daemon.url("/runs")).send().expect("send"));
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let wrong = client
        .get(daemon.url("/runs"))
        .bearer_auth("s3cres")
        .send()
        .expect("send");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    // Refused before the body is read: the headers of a 2 MiB body, with no body sent, are
    // answered 401 at once (not 413, and without waiting for the body).
    {
        use std::io::{Read, Write};
        let address = daemon.base.trim_start_matches("http://").to_owned();
        let mut stream = std::net::TcpStream::connect(&address).expect("connect");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        write!(
            stream,
            "POST /runs HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            2 * 1024 * 1024
        )
        .expect("headers");
        let mut answer = [0u8; 64];
        let n = stream.read(&mut answer).expect("an answer before the body");
        let status_line = String::from_utf8_lossy(&answer[..n]).into_owned();
        assert!(status_line.starts_with("HTTP/1.1 401"), "{status_line}");
    }
    let right = client
        .get(daemon.url("/runs"))
        .bearer_auth("s3cret")
        .send()
        .expect("send");
    assert_eq!(right.status(), StatusCode::OK);
}

#[test]
fn runs_are_created_listed_paged_and_controlled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let daemon = start_daemon(
        &dir.path().join("data"),
        &["--max-runs-per-workspace", "3"],
        &[],
    );
    let client = client();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let response = client
            .post(daemon.url("/runs"))
            .json(&run_body(&repo, "one_task.sh", json!({})))
            .send()
            .expect("create");
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().expect("json");
        ids.push(crate::support::run_id(&body));
    }
    for id in &ids {
        let run = wait_for_end(&daemon, id);
        assert_eq!(run["status"], "COMPLETED", "{run}");
    }
    // Pages of two, newest first, every run once.
    let first: Value = client
        .get(daemon.url("/runs?limit=2"))
        .send()
        .expect("list")
        .json()
        .expect("json");
    let next = first["next"].as_str().expect("a cursor").to_owned();
    let second: Value = client
        .get(daemon.url(&format!("/runs?limit=2&before={next}")))
        .send()
        .expect("list")
        .json()
        .expect("json");
    let listed: Vec<&str> = first["runs"]
        .as_array()
        .into_iter()
        .chain(second["runs"].as_array())
        .flatten()
        .filter_map(|r| r["id"].as_str())
        .collect();
    let expected: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, expected);
    assert!(second["next"].is_null());
    let completed: Value = client
        .get(daemon.url("/runs?status=COMPLETED"))
        .send()
        .expect("list")
        .json()
        .expect("json");
    assert_eq!(completed["runs"].as_array().map(Vec::len), Some(3));

    let steps: Value = client
        .get(daemon.url(&format!("/runs/{}/steps", ids[0])))
        .send()
        .expect("steps")
        .json()
        .expect("json");
    assert!(steps["steps"].as_array().is_some_and(|s| !s.is_empty()));

    // Illegal transitions are 409 and name the state.
    let (status, code, message) = error_of(
        client
            .post(daemon.url(&format!("/runs/{}/resume", ids[0])))
            .send()
            .expect("send"),
    );
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "illegal_transition")
    );
    assert!(message.contains("COMPLETED"), "{message}");

    let metrics = client
        .get(daemon.url("/metrics"))
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    assert!(
        metrics.contains("loopd_runs{status=\"COMPLETED\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("loopd_steps_total{phase=\"implementation\",status=\"SUCCEEDED\"}"),
        "{metrics}"
    );
}

#[test]
fn artifacts_are_served_from_the_run_directory_and_nothing_outside_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let client = client();
    let created: Value = client
        .post(daemon.url("/runs"))
        .json(&run_body(&repo, "one_task.sh", json!({})))
        .send()
        .expect("create")
        .json()
        .expect("json");
    let id = crate::support::run_id(&created);
    wait_for_end(&daemon, &id);
    let list: Value = client
        .get(daemon.url(&format!("/runs/{id}/artifacts")))
        .send()
        .expect("list")
        .json()
        .expect("json");
    let names: Vec<&str> = list["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert!(
        names.contains(&"summary.json") && names.contains(&"iter-01-impl.log"),
        "{names:?}"
    );
    let summary: Value = client
        .get(daemon.url(&format!("/runs/{id}/artifacts/summary.json")))
        .send()
        .expect("get")
        .json()
        .expect("json");
    assert_eq!(summary["exit_reason"], "complete_plan");

    // A symlink out of the run directory is not followed.
    let run_dir = repo.join("logs/loop").join(format!("run-{id}"));
    std::os::unix::fs::symlink("/etc/passwd", run_dir.join("passwd")).expect("symlink");
    for (path, expected) in [
        (
            format!("/runs/{id}/artifacts/passwd"),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/runs/{id}/artifacts/..%2F..%2F..%2Fspecs%2Ffeature.md"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/runs/{id}/artifacts/%2Fetc%2Fpasswd"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/runs/{id}/artifacts/missing.txt"),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let response = client.get(daemon.url(&path)).send().expect("send");
        assert_eq!(response.status(), expected, "{path}");
        let _: Value = response.json().expect("a JSON error");
    }
}

/// loopd starts agents through itself (`process::trampoline`), looking the program up first:
/// an agent that is not there, or cannot be run, fails the run saying so, as a direct spawn did.
#[test]
fn an_agent_that_is_missing_or_not_executable_fails_the_run_saying_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let not_executable = dir.path().join("claude-not-executable");
    std::fs::write(&not_executable, "#!/bin/sh\n").expect("a file without an execute bit");
    for (index, (claude_bin, why)) in [
        (
            dir.path().join("no-such-claude").display().to_string(),
            "No such file or directory",
        ),
        (
            "no-such-claude-on-path".to_owned(),
            "No such file or directory",
        ),
        (not_executable.display().to_string(), "Permission denied"),
    ]
    .into_iter()
    .enumerate()
    {
        let repo = repo(&dir.path().join(index.to_string()), 1);
        let body = run_body(
            &repo,
            "one_task.sh",
            json!({ "agent": "claude", "claude_bin": claude_bin }),
        );
        let id = submit(&daemon, &body);
        let run = wait_for_end(&daemon, &id);
        assert_eq!(run["status"], "FAILED", "{run}");
        let text = get_json(&daemon, &format!("/runs/{id}/steps")).to_string();
        assert!(
            text.contains("cannot start the agent") && text.contains(why),
            "{claude_bin}: {text}"
        );
    }
}

/// The reserve holds Codex runs too: codex-cli prints no rate-limit window on stdout, so the
/// daemon reads it from the session's rollout under `$CODEX_HOME/sessions`. A first call that
/// leaves the five-hour window 95% used stops a run keeping 10% free after that iteration; the
/// account shows the window, and the derived account names `CODEX_HOME`.
#[test]
fn a_codex_run_keeping_a_reserve_stops_at_the_window_its_session_reports() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 3);
    let reset_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs()
        + 3600;
    std::fs::write(repo.join(".stub-codex"), format!("window:95.0:{reset_s}")).expect("mode");
    let codex_home = dir.path().join("codex-home");
    let daemon = start_daemon(
        &dir.path().join("data"),
        &[],
        &[("CODEX_HOME", codex_home.to_str().expect("utf-8"))],
    );
    let body = run_body(
        &repo,
        "one_task.sh",
        json!({
            "agent": "codex",
            "codex_bin": loop_testkit::agents::path("codex_stub.sh"),
            "account_reserve_pct": 10,
        }),
    );
    let id = submit(&daemon, &body);
    let mut run = Value::Null;
    loop_testkit::until(
        "the run waits at its reserve",
        std::time::Duration::from_secs(60),
        || {
            run = get_json(&daemon, &format!("/runs/{id}"))["run"].clone();
            run["waiting"]["code"] == "account_reserve"
                || matches!(run["status"].as_str(), Some("FAILED" | "COMPLETED"))
        },
    );
    assert_eq!(run["waiting"]["code"], "account_reserve", "{run}");
    assert_eq!(run["tasks_done"], 1, "{run}");
    assert_eq!(run["waiting"]["until_ms"], json!(reset_s * 1000), "{run}");
    let accounts = get_json(&daemon, "/accounts");
    let account = &accounts["accounts"][0];
    assert_eq!(
        account["account"],
        json!(format!("codex:{}", codex_home.display())),
        "{accounts}"
    );
    assert_eq!(account["window"], "five_hour", "{accounts}");
    assert_eq!(account["window_utilization"], json!(0.95), "{accounts}");
    // Every window reported, each with its reset, for the board's countdowns.
    assert_eq!(account["windows"][0]["window"], "five_hour", "{accounts}");
    assert_eq!(
        account["windows"][0]["utilization"],
        json!(0.95),
        "{accounts}"
    );
    assert_eq!(
        account["windows"][0]["resets_at_ms"],
        json!(reset_s * 1000),
        "{accounts}"
    );
    assert_eq!(account["model_limits"], json!([]), "{accounts}");
    let canceled = client()
        .post(daemon.url(&format!("/runs/{id}/cancel")))
        .send()
        .expect("cancel");
    assert!(canceled.status().is_success());
}

/// `GET /accounts` groups runs by their account (named here, derived when not) and counts
/// their calls; `GET /nodes` on a SQLite log shows this daemon alone.
#[test]
fn accounts_group_the_runs_and_a_lone_daemon_is_its_only_node() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first_repo = repo(dir.path(), 1);
    let other_repo = repo(&dir.path().join("other"), 1);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let named = submit(
        &daemon,
        &run_body(&first_repo, "one_task.sh", json!({"account": "team-x"})),
    );
    assert_eq!(wait_for_end(&daemon, &named)["status"], "COMPLETED");
    let derived = submit(&daemon, &run_body(&other_repo, "one_task.sh", json!({})));
    assert_eq!(wait_for_end(&daemon, &derived)["status"], "COMPLETED");

    let accounts = get_json(&daemon, "/accounts");
    let all = accounts["accounts"].as_array().expect("accounts");
    let team = all
        .iter()
        .find(|a| a["account"] == "team-x")
        .unwrap_or_else(|| panic!("no team-x in {accounts}"));
    assert_eq!(team["runs"], json!([named]));
    assert!(team["calls"].as_u64().is_some_and(|c| c >= 1), "{team}");
    assert_eq!(team["limited_until"], Value::Null);
    let other = all
        .iter()
        .find(|a| a["runs"] == json!([derived]))
        .unwrap_or_else(|| panic!("no account holds {derived}: {accounts}"));
    let name = other["account"].as_str().unwrap_or_default();
    assert!(
        name.starts_with("command:") && name.ends_with("one_task.sh"),
        "{name}"
    );

    let nodes = get_json(&daemon, "/nodes");
    assert_eq!(nodes["cluster"], false, "{nodes}");
    assert_eq!(nodes["nodes"].as_array().map(Vec::len), Some(1), "{nodes}");
    assert_eq!(nodes["nodes"][0]["this"], true, "{nodes}");
}
