//! What the cluster tests share: nodes over one PostgreSQL log, a bare repository as the
//! remote, runs by URL, and reading the log and the remote back.

use std::path::{Path, PathBuf};

use loop_core::{Event, EventRecord};
use loop_testkit::postgres::Postgres;
use serde_json::{Value, json};

use crate::support::{Daemon, get_json, start_daemon};

/// A node named `name` over `server`'s log, its data dir `root/name`, with a lease of
/// `lease_ms`; `NODE=<name>` reaches its agents, so a stub can say which node ran it. Every
/// node under `root` shares one token (`root/cluster-token`): nodes trust only nodes that
/// prove it.
pub fn node(root: &Path, server: &Postgres, name: &str, lease_ms: u64) -> Daemon {
    let token = root.join("cluster-token");
    start_daemon(
        &root.join(name),
        &[
            "--lease-ms",
            &lease_ms.to_string(),
            "--node-name",
            name,
            "--max-runs-per-workspace",
            "16",
        ],
        &[
            ("LOOPD_STORE", server.url.as_str()),
            ("LOOPD_TOKEN_FILE", &token.to_string_lossy()),
            ("NODE", name),
        ],
    )
}

/// The id of the node `daemon` is, from its own `GET /nodes` (once its first heartbeat is
/// recorded).
pub fn node_id(daemon: &Daemon) -> String {
    let mut id = None;
    loop_testkit::until(
        "the node lists itself",
        std::time::Duration::from_secs(60),
        || {
            id = get_json(daemon, "/nodes")["nodes"]
                .as_array()
                .and_then(|nodes| nodes.iter().find(|n| n["this"] == true))
                .and_then(|n| n["id"].as_str())
                .map(str::to_owned);
            id.is_some()
        },
    );
    id.expect("the node's id")
}

/// The run as `daemon` answers it.
pub fn status_on(daemon: &Daemon, id: &str) -> Value {
    get_json(daemon, &format!("/runs/{id}"))["run"].clone()
}

/// A repository with a spec and a plan of `tasks` tasks, pushed to a bare repository
/// `root/remote.git` (the remote); that repository and its URL.
pub fn remote(root: &Path, tasks: usize) -> (PathBuf, String) {
    let origin = crate::support::repo(&root.join("origin"), tasks);
    let bare = root.join("remote.git");
    let url = loop_testkit::bare_clone(&origin, &bare);
    (bare, url)
}

/// A script at `path` that runs `before` (shell lines), then the well-behaved stub on the
/// prompt it was given; as an `agent_cmd`.
pub fn agent(path: &Path, before: &str) -> String {
    std::fs::write(
        path,
        format!("{before}\nexec {}\n", crate::support::stub("one_task.sh")),
    )
    .expect("write the agent");
    format!("sh {}", path.display())
}

/// A `POST /runs` body of a run of `url` by `agent_cmd`, with `extra` config keys.
pub fn url_body(url: &str, agent_cmd: &str, extra: Value) -> Value {
    let mut config = json!({
        "agent": "command",
        "agent_cmd": agent_cmd,
        "reviewer": false,
        "postmortem": false,
        "run_naming_mode": "spec_slug",
        "worktree_provider": "git",
    });
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            config.insert(key.clone(), value.clone());
        }
    }
    json!({"spec_path": "specs/feature.md", "repo_url": url, "config": config})
}

/// The run's events, read from the log itself.
pub fn events(server: &Postgres, id: &str) -> Vec<EventRecord> {
    let store = loop_store::PgStore::connect(&server.url).expect("connect to the log");
    loop_store::EventStore::read_run(&store, id.parse().expect("a run id")).expect("read the run")
}

/// The log replays with no difference from its stored projections.
pub fn assert_replays_clean(server: &Postgres) {
    let store = loop_store::PgStore::connect(&server.url).expect("connect to the log");
    let report = loop_store::replay(&store, None).expect("replay");
    assert_eq!(report.differences, vec![], "replay of the log");
}

/// Each step of the run started once and finished once.
pub fn assert_steps_closed_once(records: &[EventRecord]) {
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    for record in records {
        if let Event::StepStarted(step) = &record.event {
            *seen.entry(step.step_id.to_string()).or_default() += 1;
        }
        if let Event::StepFinished(step) = &record.event {
            *seen.entry(step.step_id.to_string()).or_default() += 1;
        }
    }
    assert!(
        seen.values().all(|n| *n == 2),
        "every step started and finished once: {seen:?}"
    );
}

/// The live processes working for run `id` (its agents and commands carry `LOOP_RUN_ID`).
pub fn processes_of(id: &str) -> Vec<i32> {
    loop_testkit::procs::with_env("LOOP_RUN_ID", id)
        .into_iter()
        .map(|proc| proc.pid)
        .collect()
}
