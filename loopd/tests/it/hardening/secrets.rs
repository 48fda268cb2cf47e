//! What is the owner's alone: the daemon's secrets out of its children's reach, its files
//! readable by nobody else.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{client, repo, run_body, run_file, start_daemon};

use super::children_with_arg;

#[test]
fn agents_never_see_the_daemons_secrets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let data = dir.path().join("data");
    // The store's URL holds a password: a real PostgreSQL log when there is a server (trust
    // authentication takes any password), else a SQLite file with the word in its path.
    let server = loop_testkit::postgres::Postgres::start(
        "the PostgreSQL variant of hardening::agents_never_see_the_daemons_secrets",
    );
    let store = match &server {
        Some(server) => format!("postgres://loop:hunter2@127.0.0.1:{}/postgres", server.port),
        None => format!("sqlite:{}", dir.path().join("hunter2.db").display()),
    };
    let daemon = start_daemon(
        &data,
        &[],
        &[
            ("LOOPD_AUTH_TOKEN", "s3cret-token"),
            ("LOOPD_STORE", store.as_str()),
        ],
    );
    let created: Value = client()
        .post(daemon.url("/runs"))
        .bearer_auth("s3cret-token")
        .json(&run_body(
            &repo,
            "env_dump.sh",
            json!({"verify_cmds": "env > verify-env"}),
        ))
        .send()
        .expect("create")
        .json()
        .expect("json");
    let id = crate::support::run_id(&created);
    let mut run = Value::Null;
    for _ in 0..600 {
        run = client()
            .get(daemon.url(&format!("/runs/{id}")))
            .bearer_auth("s3cret-token")
            .send()
            .expect("get")
            .json()
            .expect("json");
        if run["run"]["status"] == "COMPLETED" || run["run"]["status"] == "FAILED" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(run["run"]["status"], "COMPLETED", "{run}");
    let agent_env = std::fs::read_to_string(run_file(&repo, &data, &id, "agent-env"))
        .expect("the agent's environment");
    let verify_env = std::fs::read_to_string(repo.join("verify-env")).expect("verify's");
    for env in [&agent_env, &verify_env] {
        assert!(!env.contains("s3cret-token"), "{env}");
        assert!(!env.contains("hunter2"), "{env}");
        assert!(!env.contains("LOOPD_"), "{env}");
        assert!(env.contains("LOOP_RUN_ID="), "{env}");
    }
}

#[test]
fn the_database_and_its_journal_files_are_the_owners_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    // A log made by hand or an older build, readable by everyone.
    drop(start_daemon(&data, &[], &[]));
    let db = data.join("loopd.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("loosen");
    let repo = repo(dir.path(), 1);
    let daemon = start_daemon(&data, &[], &[]);
    let created = client()
        .post(daemon.url("/runs"))
        .json(&run_body(&repo, "one_task.sh", json!({})))
        .send()
        .expect("create");
    assert_eq!(created.status(), StatusCode::CREATED);
    // While the daemon runs, the log's journal files exist (WAL mode) and are the owner's only.
    for name in ["loopd.db", "loopd.db-wal", "loopd.db-shm"] {
        let path = data.join(name);
        let meta = std::fs::metadata(&path)
            .unwrap_or_else(|error| panic!("{name} while the daemon runs: {error}"));
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "{name} is not owner-only"
        );
    }
    drop(daemon);
}

/// Issue 23, defect 7: children got no `LOOPD_*` variable, but an agent (the daemon's user)
/// read the token and the store's password in `/proc/<loopd>/environ` and in the reaper's.
/// Now neither holds them while an agent works, and a store URL given in a file is not in
/// the daemon's command line either.
#[test]
fn no_process_finds_the_daemons_secrets_in_proc() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let data = dir.path().join("data");
    let server = loop_testkit::postgres::Postgres::start(
        "the PostgreSQL variant of hardening::no_process_finds_the_daemons_secrets_in_proc",
    );
    let store = match &server {
        Some(server) => format!("postgres://loop:hunter2@127.0.0.1:{}/postgres", server.port),
        None => format!("sqlite:{}", dir.path().join("hunter2.db").display()),
    };
    let daemon = start_daemon(
        &data,
        &[],
        &[
            ("LOOPD_AUTH_TOKEN", "s3cret-token"),
            ("LOOPD_STORE", store.as_str()),
        ],
    );
    // The agent reads its parent's environment, as any process of the user may, then works.
    let mut body = run_body(&repo, "one_task.sh", json!({}));
    body["config"]["agent_cmd"] = json!(format!(
        "tr '\\0' '\\n' < /proc/$PPID/environ > \"$LOOP_RUN_DIR/daemon-environ\"; {}",
        crate::support::stub("one_task.sh")
    ));
    let created: Value = client()
        .post(daemon.url("/runs"))
        .bearer_auth("s3cret-token")
        .json(&body)
        .send()
        .expect("create")
        .json()
        .expect("json");
    let id = crate::support::run_id(&created);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let seen = loop {
        if let Ok(text) = std::fs::read_to_string(run_file(&repo, &data, &id, "daemon-environ"))
            && !text.is_empty()
        {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "the agent never ran");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(seen.contains("PATH="), "the daemon's: {seen}");
    let reapers = children_with_arg(daemon.pid() as i32, "--loop-runtime-reaper");
    assert_eq!(reapers.len(), 1, "{reapers:?}");
    let environ = |pid: i32| {
        String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).expect("an environ"))
            .into_owned()
    };
    for (whose, text) in [
        ("as the agent read it", seen),
        ("the daemon's", environ(daemon.pid() as i32)),
        ("the reaper's", environ(reapers[0])),
    ] {
        assert!(!text.contains("s3cret-token"), "{whose}: {text}");
        assert!(!text.contains("hunter2"), "{whose}: {text}");
    }

    // The same URL in a file: out of the command line `ps` shows, and the daemon serves.
    let store_file = dir.path().join("store-url");
    std::fs::write(&store_file, format!("{store}\n")).expect("store file");
    let second = start_daemon(
        &dir.path().join("data-2"),
        &["--store-file", &store_file.to_string_lossy()],
        &[],
    );
    let runs: Value = client()
        .get(second.url(&format!("/runs/{id}")))
        .send()
        .expect("get")
        .json()
        .expect("json");
    assert_eq!(crate::support::run_id(&runs), id, "the same log: {runs}");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", second.pid())).expect("cmdline");
    assert!(
        !String::from_utf8_lossy(&cmdline).contains("hunter2"),
        "{:?}",
        String::from_utf8_lossy(&cmdline)
    );
}
