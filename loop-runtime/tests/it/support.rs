//! A scratch workspace (git repository with a spec and a plan), a runtime over a temp log, and
//! the stub agents of `loop-testkit`.

use std::sync::Arc;
use std::time::Duration;

use loop_core::EventRecord;
use loop_core::config::Layer;
use loop_core::event::Event;
use loop_runtime::{RunRequest, Runtime};
use loop_store::SqliteStore;

pub use loop_testkit::Scratch;

/// A git repository with `specs/feature.md` and a plan of `tasks` pending tasks.
pub fn scratch(tasks: usize) -> Scratch {
    Scratch::new(tasks)
}

/// The stub agent `name` as an `agent_cmd`.
pub fn agent(name: &str) -> String {
    loop_testkit::agents::cmd(name)
}

pub fn runtime(scratch: &Scratch) -> Runtime {
    let store = Arc::new(SqliteStore::open(scratch.db()).expect("open log"));
    Runtime::builder()
        .store(store)
        .data_dir(scratch.data_dir())
        .build()
        .expect("runtime")
}

/// A request for the scratch spec with the stub `agent` and these config values on top.
pub fn request(scratch: &Scratch, agent_script: &str, config: &[(&str, &str)]) -> RunRequest {
    let mut request = request_without_agent(scratch, config);
    request
        .config
        .insert("agent_cmd".to_owned(), agent(agent_script));
    request
}

/// A request for the scratch spec with no `agent_cmd`: for an agent `config` names.
pub fn request_without_agent(scratch: &Scratch, config: &[(&str, &str)]) -> RunRequest {
    let mut layer = Layer::new();
    for (key, value) in [
        ("agent", "command"),
        ("worktree_provider", "none"),
        ("postmortem", "false"),
        ("claude_retry_backoff_sec", "0"),
        ("agent_idle_timeout_sec", "0"),
        ("run_naming_mode", "spec_slug"),
    ] {
        layer.insert(key.to_owned(), value.to_owned());
    }
    for (key, value) in config {
        layer.insert((*key).to_owned(), (*value).to_owned());
    }
    RunRequest {
        workspace_root: scratch.repo(),
        spec_path: "specs/feature.md".to_owned(),
        config: layer,
        ..RunRequest::default()
    }
}

/// Waits for the run to end, at most a minute; on timeout, says where the run stands.
pub async fn finish(runtime: &Runtime, run_id: loop_core::RunId) -> loop_core::projection::RunView {
    match tokio::time::timeout(Duration::from_secs(60), runtime.wait(run_id)).await {
        Ok(view) => view.expect("wait"),
        Err(_) => {
            let view = runtime.get(run_id).await.expect("get");
            let records = runtime.events(run_id).await.expect("events");
            panic!(
                "the run did not end within a minute: {:?} {:?}, events {:?}",
                view.status,
                view.waiting,
                types(&records)
            );
        }
    }
}

pub fn types(records: &[EventRecord]) -> Vec<&'static str> {
    records
        .iter()
        .map(|r| r.event.event_type().as_str())
        .collect()
}

pub fn count(records: &[EventRecord], matches: impl Fn(&Event) -> bool) -> usize {
    records.iter().filter(|r| matches(&r.event)).count()
}
