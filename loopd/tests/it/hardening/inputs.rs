//! Run requests that are wrong, refused before anything is paid for.

use serde_json::{Value, json};

use crate::support::{client, repo, start_daemon};

#[test]
fn bad_run_requests_are_refused_with_the_field_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let outside = dir.path().join("outside.md");
    std::fs::write(&outside, "# Elsewhere\n").expect("outside spec");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("dir");
    std::fs::write(repo.join("specs/planning/done-plan.md"), "- [x] all done\n").expect("plan");
    std::fs::write(repo.join("specs/done.md"), "# Done\n").expect("spec");
    std::fs::write(repo.join("specs/lonely.md"), "# No plan\n").expect("spec");
    let long_name = "n".repeat(10_000);
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"spec_path": outside, "workspace_root": repo}),
            400,
            "outside the workspace",
        ),
        (
            json!({"spec_path": "../outside.md", "workspace_root": repo}),
            400,
            "outside the workspace",
        ),
        (
            json!({"spec_path": "specs/feature.md", "plan_path": "../outside.md", "workspace_root": repo}),
            400,
            "outside the workspace",
        ),
        (
            json!({"spec_path": "specs/lonely.md", "workspace_root": repo}),
            404,
            "no plan",
        ),
        (
            json!({"spec_path": "specs/feature.md", "workspace_root": "/"}),
            400,
            "not the root of a git repository",
        ),
        (
            json!({"spec_path": "specs/feature.md", "workspace_root": empty}),
            400,
            "not the root of a git repository",
        ),
        (
            json!({"spec_path": "specs/feature.md", "workspace_root": "relative/path"}),
            400,
            "absolute",
        ),
        (
            json!({"spec_path": "specs/feature.md", "workspace_root": repo, "iterations": 0}),
            400,
            "at least 1",
        ),
        (
            json!({"spec_path": "specs/feature.md", "workspace_root": repo, "name": long_name}),
            400,
            "longer than",
        ),
        (
            json!({"spec_path": "specs/done.md", "workspace_root": repo}),
            409,
            "nothing to run",
        ),
    ];
    for (body, want_status, want_text) in cases {
        let response = client()
            .post(daemon.url("/runs"))
            .json(&body)
            .send()
            .expect("send");
        let status = response.status().as_u16();
        let answer: Value = response.json().expect("JSON");
        let message = answer["error"].as_str().unwrap_or("");
        assert_eq!(status, want_status, "{body}: {answer}");
        assert!(message.contains(want_text), "{body}: {answer}");
    }
    let runs: Value = client()
        .get(daemon.url("/runs"))
        .send()
        .expect("list")
        .json()
        .expect("json");
    assert_eq!(runs["runs"], json!([]), "nothing was created");
}

/// Issue 23, defect 11: `repo_url` values such as `fd::17` hung the submit for over a minute
/// (git's remote helper talking over a descriptor), and `repo_url`, `base_branch` and
/// `run_branch_prefix` reached git where an option could stand. Now each is refused at once,
/// 400 naming the field, before git runs; nothing is created.
#[test]
fn inputs_that_would_reach_git_as_a_helper_or_an_option_are_refused_at_submit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let bare = dir.path().join("remote.git");
    let url = loop_testkit::bare_clone(&repo, &bare);
    let mark = dir.path().join("pwned");
    // A client that gives up well before a minute: a hang is a failure, not a wait.
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .expect("client");
    let by_url = |repo_url: &str, extra: Value| {
        let mut body = json!({
            "spec_path": "specs/feature.md",
            "repo_url": repo_url,
            "config": {"agent": "command", "agent_cmd": "true", "run_naming_mode": "spec_slug"},
        });
        for (key, value) in extra.as_object().expect("object") {
            body[key] = value.clone();
        }
        body
    };
    let in_place = |extra: Value| {
        let mut body = crate::support::run_body(&repo, "one_task.sh", json!({}));
        for (key, value) in extra.as_object().expect("object") {
            body[key] = value.clone();
        }
        body
    };
    let ext = format!("ext::sh -c touch% {}", mark.display());
    let cases: Vec<(Value, &str)> = vec![
        (by_url("fd::17", json!({})), "repo_url"),
        (by_url(&ext, json!({})), "repo_url"),
        (by_url("--upload-pack=touch /tmp/x", json!({})), "repo_url"),
        (by_url("http://127.0.0.1:9/app.git", json!({})), "repo_url"),
        (by_url("relative/app.git", json!({})), "repo_url"),
        (
            by_url(&url, json!({"base_branch": "--upload-pack=touch"})),
            "base_branch",
        ),
        (
            by_url(&url, json!({"base_branch": "main..x"})),
            "base_branch",
        ),
        (
            in_place(json!({"run_branch_prefix": "-x"})),
            "run_branch_prefix",
        ),
        (
            in_place(json!({"run_branch_prefix": "a b/"})),
            "run_branch_prefix",
        ),
        (
            in_place(json!({"merge_target": "--delete"})),
            "merge_target_branch",
        ),
        (in_place(json!({"base_branch": "HEAD"})), "base_branch"),
    ];
    for (body, field) in cases {
        let answer = client
            .post(daemon.url("/runs"))
            .json(&body)
            .send()
            .unwrap_or_else(|error| panic!("no answer to {body}: {error}"));
        assert_eq!(answer.status().as_u16(), 400, "{body}");
        let error: Value = answer.json().expect("json");
        let message = error["error"].as_str().unwrap_or("");
        assert!(message.contains(field), "{field}: {error}");
    }
    let runs: Value = client
        .get(daemon.url("/runs"))
        .send()
        .expect("runs")
        .json()
        .expect("json");
    assert_eq!(runs["runs"], json!([]), "nothing was created");
    assert!(!mark.exists(), "ext:: ran a command");
    // The same repository by an allowed URL is taken.
    let answer = client
        .post(daemon.url("/runs"))
        .json(&by_url(&url, json!({"base_branch": "main"})))
        .send()
        .expect("create");
    assert_eq!(
        answer.status().as_u16(),
        201,
        "{}",
        answer.text().unwrap_or_default()
    );
}
