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
