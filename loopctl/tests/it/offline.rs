//! `replay` and `export`: the commands that need only the event log.

use loop_core::projection::Export;
use loop_store::{EventStore, SqliteStore};

use crate::support::{log_with_runs, loopctl, path_arg, text};

#[test]
fn replay_of_a_consistent_log_reports_no_difference() {
    let fixture = log_with_runs(3);
    let output = loopctl(&["replay", "--db", path_arg(&fixture.db())]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("3 runs"), "{stdout}");
    assert!(stdout.contains("no difference"), "{stdout}");
}

#[test]
fn replay_names_each_tampered_field_and_exits_1() {
    let fixture = log_with_runs(2);
    let raw = rusqlite::Connection::open(fixture.db()).expect("raw connection");
    raw.execute(
        "UPDATE runs SET view = json_set(view, '$.status', 'FAILED', '$.iteration', 7) WHERE run_id = ?1",
        [fixture.run_id.to_string()],
    )
    .expect("tamper");
    drop(raw);

    let output = loopctl(&["replay", "--db", path_arg(&fixture.db())]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("run.status differs: stored \"FAILED\", folded \"COMPLETED\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("run.iteration differs: stored 7, folded 1"),
        "{stdout}"
    );
    assert!(stdout.contains("2 differences"), "{stdout}");
}

#[test]
fn replay_json_is_one_document_with_the_differences() {
    let fixture = log_with_runs(1);
    let raw = rusqlite::Connection::open(fixture.db()).expect("raw connection");
    // The run's stored snapshot is lost (steps are folded from the events, never stored).
    raw.execute("DELETE FROM runs", []).expect("tamper");
    drop(raw);

    let output = loopctl(&["--json", "replay", "--db", path_arg(&fixture.db())]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON document");
    assert_eq!(report["runs"], 1);
    let differences = report["differences"].as_array().expect("differences");
    assert_eq!(differences.len(), 1, "the missing run row: {report}");
    assert!(
        differences.iter().all(|d| d["stored"] == "null"),
        "{report}"
    );
}

#[test]
fn replay_of_one_run_by_name_checks_only_that_run() {
    let fixture = log_with_runs(3);
    let output = loopctl(&["replay", "--db", path_arg(&fixture.db()), "tidy-otter-2"]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    assert!(text(&output.stdout).contains("1 runs"));
}

#[test]
fn export_writes_the_projection_files_of_the_log() {
    let fixture = log_with_runs(2);
    let out = fixture.dir.path().join("export");
    let prefix = &fixture.run_id.to_string()[..13];
    let output = loopctl(&[
        "export",
        prefix,
        "--db",
        path_arg(&fixture.db()),
        "--out",
        path_arg(&out),
    ]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));

    let store = SqliteStore::open(fixture.db()).expect("open");
    let expected = Export::of(&store.read_run(fixture.run_id).expect("read")).expect("export");
    for (name, contents) in expected.files() {
        let written = std::fs::read_to_string(out.join(name)).expect(name);
        assert_eq!(written, contents, "{name}");
    }
    assert!(
        expected
            .report_tsv
            .starts_with("timestamp_ms\tkind\titeration")
    );
    assert!(
        expected
            .summary_json
            .contains("\"exit_reason\": \"complete_plan\"")
    );
}

#[test]
fn export_works_on_a_copied_log() {
    let fixture = log_with_runs(1);
    let copy = tempfile::tempdir().expect("temp dir");
    let copied = copy.path().join("copied.db");
    // A clean copy of a closed log is just the file: the WAL was checkpointed on close.
    std::fs::copy(fixture.db(), &copied).expect("copy");
    let out = copy.path().join("out");
    let output = loopctl(&[
        "export",
        "tidy-otter-1",
        "--db",
        path_arg(&copied),
        "--out",
        path_arg(&out),
    ]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    let events = std::fs::read_to_string(out.join("events.jsonl")).expect("events.jsonl");
    assert_eq!(events.lines().count(), 11);
}

#[test]
fn an_unknown_run_is_a_one_line_error() {
    let fixture = log_with_runs(1);
    let output = loopctl(&[
        "export",
        "nope",
        "--db",
        path_arg(&fixture.db()),
        "--out",
        "/tmp/x",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no run matches \"nope\""), "{stderr}");
}

#[test]
fn a_missing_log_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("absent.db");
    let output = loopctl(&["replay", "--db", path_arg(&db)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("no event log at"));
    assert!(!db.exists());
}

#[test]
fn a_file_that_is_not_a_log_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("notes.db");
    std::fs::write(&db, "these are my notes, not a database\n".repeat(200)).expect("write");
    let output = loopctl(&["replay", "--db", path_arg(&db)]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("notes.db"), "{stderr}");
    assert!(stderr.contains("not a loop event log"), "{stderr}");
}

#[test]
fn a_usage_error_exits_2() {
    let output = loopctl(&["export"]);
    assert_eq!(output.status.code(), Some(2));
}

/// `migrate` copies a SQLite log into PostgreSQL event for event; `replay` and `export` then
/// read the copy with `--store`, and a second migrate into the now full database is refused.
#[test]
fn migrate_copies_a_log_to_postgres_and_replay_and_export_read_it_there() {
    let Some(server) = loop_testkit::postgres::Postgres::start(
        "offline::migrate_copies_a_log_to_postgres_and_replay_and_export_read_it_there",
    ) else {
        return;
    };
    let fixture = log_with_runs(3);
    let db = fixture.db();
    let output = loopctl(&["migrate", "--from", path_arg(&db), "--to", &server.url]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains("of 3 runs"), "{stdout}");
    assert!(stdout.contains("reads and replays the same"), "{stdout}");

    let source = SqliteStore::open(&db).expect("open the source");
    let copy = loop_store::PgStore::connect(&server.url).expect("connect");
    let all = source
        .read_all(loop_core::Seq(0), usize::MAX)
        .expect("read");
    assert_eq!(
        copy.read_all(loop_core::Seq(0), usize::MAX)
            .expect("read the copy"),
        all
    );
    drop(copy);

    let output = loopctl(&["replay", "--store", &server.url]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(
        stdout.contains("3 runs") && stdout.contains("no difference"),
        "{stdout}"
    );

    let run_id = all[0].run_id.to_string();
    let out = tempfile::tempdir().expect("temp dir");
    let output = loopctl(&[
        "export",
        &run_id,
        "--store",
        &server.url,
        "--out",
        path_arg(out.path()),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let records = source
        .read_run(run_id.parse().expect("a run id"))
        .expect("read");
    let expected = Export::of(&records).expect("an export");
    assert_eq!(
        std::fs::read_to_string(out.path().join("summary.json")).expect("summary"),
        expected.summary_json
    );

    let output = loopctl(&["migrate", "--from", path_arg(&db), "--to", &server.url]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("already holds"),
        "{}",
        text(&output.stderr)
    );
    // A password never reaches a message.
    let output = loopctl(&[
        "replay",
        "--store",
        &format!("postgres://loop:hunter2@127.0.0.1:{}/nowhere", server.port),
    ]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("loop:***@") && !stderr.contains("hunter2"),
        "{stderr}"
    );
}
