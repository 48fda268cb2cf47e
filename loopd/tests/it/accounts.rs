//! `loopd --accounts FILE` (`contract.md` §7): the accounts the daemon declares, with their
//! credential places, and runs that name a pool of them.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::{client, get_json, repo, run_body, start_daemon, submit, wait_for_end};

/// An accounts file declaring `work-1` and `work-2`, each a directory the claude stub keeps
/// that account's calls and limit in (as `CLAUDE_CONFIG_DIR` names it).
fn accounts_file(root: &Path) -> std::path::PathBuf {
    let mut text = String::new();
    for name in ["work-1", "work-2"] {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("account dir");
        std::fs::write(dir.join("stub-account"), "").expect("marker");
        text.push_str(&format!(
            "[[account]]\nname = \"{name}\"\nagent = \"claude\"\n[account.env]\nCLAUDE_CONFIG_DIR = {:?}\n\n",
            dir.display().to_string()
        ));
    }
    let file = root.join("accounts.toml");
    std::fs::write(&file, text).expect("accounts file");
    file
}

fn claude(extra: Value, repo: &Path) -> Value {
    let mut body = run_body(repo, "one_task.sh", extra);
    body["config"]["agent"] = json!("claude");
    body["config"]["claude_bin"] = json!(loop_testkit::agents::path("claude_stub.sh"));
    body
}

/// A pool run whose first account is at its usage limit is served by the second at once; the
/// step names it, the accounts list names both declared accounts and never their credential
/// places, and the run's frozen configuration holds none either.
#[test]
fn a_pool_of_declared_accounts_fails_over_and_keeps_credentials_daemon_side() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = accounts_file(dir.path());
    let far = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs()
        + 3 * 3600;
    std::fs::write(dir.path().join("work-1/limited"), far.to_string()).expect("limit");
    let daemon = start_daemon(
        &dir.path().join("data"),
        &["--accounts", file.to_str().expect("utf-8")],
        &[],
    );
    let repo = repo(dir.path(), 1);
    let id = submit(
        &daemon,
        &claude(json!({"account_pool": "work-1 work-2"}), &repo),
    );
    let run = wait_for_end(&daemon, &id);
    assert_eq!(run["status"], "COMPLETED", "{run}");
    let events = get_json(&daemon, &format!("/runs/{id}/events?format=json"));
    let text = events.to_string();
    assert!(text.contains("\"next_account\":\"work-2\""), "{text}");
    assert!(!text.contains("CLAUDE_CONFIG_DIR"), "{text}");
    assert!(!text.contains(dir.path().join("work-1").to_str().expect("utf-8")));

    let accounts = get_json(&daemon, "/accounts");
    let names: Vec<&str> = accounts["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert!(
        names.contains(&"work-1") && names.contains(&"work-2"),
        "{accounts}"
    );
    assert!(!accounts.to_string().contains("CLAUDE_CONFIG_DIR"));
    let work1 = accounts["accounts"]
        .as_array()
        .and_then(|all| all.iter().find(|a| a["name"] == "work-1"))
        .expect("work-1");
    assert_eq!(work1["declared_agent"], "claude");
    assert_eq!(
        work1["limited_until_ms"],
        json!(far * 1000 + 60_000),
        "{work1}"
    );
    assert!(accounts["forecasts"].is_array(), "{accounts}");
}

/// A pool that names an account the daemon does not declare, or one of another agent, is
/// refused at once, saying which.
#[test]
fn a_pool_of_undeclared_accounts_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = accounts_file(dir.path());
    let daemon = start_daemon(
        &dir.path().join("data"),
        &["--accounts", file.to_str().expect("utf-8")],
        &[],
    );
    let repo = repo(dir.path(), 1);
    let answer = client()
        .post(daemon.url("/runs"))
        .json(&claude(json!({"account_pool": "work-1 nobody"}), &repo))
        .send()
        .expect("POST /runs");
    assert_eq!(answer.status().as_u16(), 400);
    let body: Value = answer.json().expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("nobody is not declared")),
        "{body}"
    );
}

/// A mistake in the accounts file stops the daemon before it listens, naming the file.
#[test]
fn a_bad_accounts_file_stops_the_daemon_saying_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("accounts.toml");
    std::fs::write(&file, "[[account]]\nname = \"x\"\nagent = \"gpt\"\n").expect("file");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loopd"))
        .args(["--port", "0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--accounts")
        .arg(&file)
        .output()
        .expect("loopd");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("accounts.toml") && said.contains("not claude, codex or command"),
        "{said}"
    );
}

/// A price file that does not read stops the daemon before it listens, naming the file and the
/// line (`loopd --prices`, over the shipped table Codex's cost is estimated by).
#[test]
fn a_bad_price_file_stops_the_daemon_naming_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("prices.txt");
    std::fs::write(&file, "# ours\ngpt-5-codex 1.25 0.125 1.25\n").expect("file");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loopd"))
        .args(["--port", "0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--prices")
        .arg(&file)
        .output()
        .expect("loopd");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("prices.txt") && said.contains("line 2"),
        "{said}"
    );
}
