//! `loopd --store postgres://…`: the log in a real PostgreSQL server (`loop_testkit::postgres`).

use serde_json::json;

use crate::support::{get_json, repo, run_body, start_daemon, submit, wait_for_end};

/// A run on a daemon whose log is PostgreSQL completes; a daemon started again on another data
/// dir over the same database knows it, its events and its steps, and the log replays clean.
#[test]
fn a_run_on_a_postgres_log_completes_and_another_daemon_over_it_knows_it() {
    let Some(server) = loop_testkit::postgres::Postgres::start(
        "postgres::a_run_on_a_postgres_log_completes_and_another_daemon_over_it_knows_it",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 2);
    let id = {
        let daemon = start_daemon(
            &dir.path().join("data-1"),
            &[],
            &[("LOOPD_STORE", server.url.as_str())],
        );
        let id = submit(&daemon, &run_body(&repo, "one_task.sh", json!({})));
        let run = wait_for_end(&daemon, &id);
        assert_eq!(run["status"], "COMPLETED", "{run}");
        id
    };
    let daemon = start_daemon(
        &dir.path().join("data-2"),
        &["--store", server.url.as_str()],
        &[],
    );
    let run = get_json(&daemon, &format!("/runs/{id}"));
    assert_eq!(run["run"]["status"], "COMPLETED", "{run}");
    let steps = get_json(&daemon, &format!("/runs/{id}/steps"));
    assert!(
        steps["steps"].as_array().is_some_and(|s| !s.is_empty()),
        "{steps}"
    );
    let store = loop_store::PgStore::connect(&server.url).expect("connect");
    let report = loop_store::replay(&store, None).expect("replay");
    assert_eq!(report.differences, vec![]);
    assert!(report.events > 0 && report.runs == 1, "{report:?}");
}
