//! The review endpoints on a finished run: its diff, merge and scrap, comments and a request
//! for changes.

use super::*;

#[test]
fn review_endpoints_diff_merge_and_scrap_a_finished_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let client = client();
    let mut body = run_body(&repo, "one_task.sh", json!({}));
    body["no_worktree"] = json!(false);
    body["worktree_provider"] = json!("git");
    let id = submit(&daemon, &body);
    assert_eq!(wait_for_end(&daemon, &id)["status"], "COMPLETED");

    let diff: Value = client
        .get(daemon.url(&format!("/runs/{id}/diff")))
        .send()
        .expect("diff")
        .json()
        .expect("json");
    assert!(
        diff["diff"]["commits"]
            .as_array()
            .is_some_and(|c| !c.is_empty()),
        "{diff}"
    );
    let worktrees: Value = client
        .get(daemon.url("/worktrees"))
        .send()
        .expect("worktrees")
        .json()
        .expect("json");
    assert_eq!(
        worktrees["worktrees"].as_array().map(Vec::len),
        Some(1),
        "{worktrees}"
    );
    let dry: Value = client
        .post(daemon.url("/gc"))
        .json(&json!({"dry_run": true}))
        .send()
        .expect("gc")
        .json()
        .expect("json");
    assert_eq!(
        dry["gc"]["removed"].as_array().map(Vec::len),
        Some(1),
        "{dry}"
    );

    let merged = client
        .post(daemon.url(&format!("/runs/{id}/merge")))
        .json(&json!({"target": "integration"}))
        .send()
        .expect("merge");
    assert_eq!(merged.status(), StatusCode::OK);
    let (status, _, message) = error_of(
        client
            .post(daemon.url(&format!("/runs/{id}/create-pr")))
            .send()
            .expect("pr"),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{message}");
    assert!(message.contains("remote"), "{message}");
    let scrapped = client
        .post(daemon.url(&format!("/runs/{id}/scrap")))
        .send()
        .expect("scrap");
    assert_eq!(scrapped.status(), StatusCode::OK);
    let worktrees: Value = client
        .get(daemon.url("/worktrees"))
        .send()
        .expect("worktrees")
        .json()
        .expect("json");
    assert_eq!(worktrees["worktrees"].as_array().map(Vec::len), Some(0));
    // A run still working cannot be reviewed: 409.
    let (status, _, _) = error_of(
        client
            .post(daemon.url("/runs/00000000-0000-7000-8000-000000000000/scrap"))
            .send()
            .expect("scrap"),
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn comments_and_a_request_for_changes_send_a_finished_run_back_to_work() {
    use loop_api::comments::{CommentBody, RequestChangesBody};
    use loop_client::ClientError;
    use loop_core::event::DiffSide;

    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let loopd = loop_client::blocking::Client::new(&daemon.base, None).expect("a client");
    let mut body = run_body(&repo, "one_task.sh", json!({}));
    body["no_worktree"] = json!(false);
    body["worktree_provider"] = json!("git");
    let id: loop_core::RunId = submit(&daemon, &body).parse().expect("an id");
    let comment = |line: u32| CommentBody {
        path: "work.txt".to_owned(),
        line,
        body: "Say which iteration wrote it.".to_owned(),
        side: DiffSide::New,
    };
    let status_of = |error: ClientError| match error {
        ClientError::Api { status, code, .. } => (status, code),
        other => panic!("{other}"),
    };
    assert_eq!(
        loopd.wait(id).expect("the end").status,
        loop_core::RunStatus::Completed
    );
    let nothing = loopd
        .request_changes(id, &RequestChangesBody::default())
        .expect_err("nothing asked");
    assert_eq!(status_of(nothing), (409, "illegal_transition".to_owned()));
    let no_line = loopd.comment(id, &comment(0)).expect_err("line 0");
    assert_eq!(status_of(no_line), (400, "bad_request".to_owned()));

    let made = loopd.comment(id, &comment(1)).expect("a comment");
    assert_eq!(
        (made.path.as_str(), made.line, made.request),
        ("work.txt", 1, None)
    );
    let raw = client()
        .post(daemon.url(&format!("/runs/{id}/comments")))
        .json(&json!({"path": "work.txt", "line": 1, "body": "x", "colour": "red"}))
        .send()
        .expect("post");
    assert_eq!(
        raw.status(),
        StatusCode::BAD_REQUEST,
        "unknown fields are refused"
    );
    let run = loopd
        .request_changes(id, &RequestChangesBody::default())
        .expect("sent back");
    assert!(!run.status.is_terminal(), "{run:?}");
    let again = loopd.wait(id).expect("the end again");
    assert_eq!(again.status, loop_core::RunStatus::Completed);
    let comments = loopd.comments(id).expect("comments");
    assert_eq!(comments.len(), 1);
    assert_eq!(comments[0].request, Some(1));
}
