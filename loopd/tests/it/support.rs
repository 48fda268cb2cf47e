//! The daemon under test (started through `loop-testkit`), run bodies for it, and a
//! wire-level SSE reader: these tests check the frames themselves, which a client hides.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

pub use loop_testkit::{Daemon, Loopd};

/// `loopd` over `data_dir` on a free loopback port, with `extra` arguments and `env`.
pub fn start_daemon(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
    let mut loopd = Loopd::new(env!("CARGO_BIN_EXE_loopd"), data_dir).args(extra);
    for (key, value) in env {
        loopd = loopd.env(key, value);
    }
    loopd.start()
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// A git repository `root/repo` with a spec and a plan of `tasks` tasks.
pub fn repo(root: &Path, tasks: usize) -> PathBuf {
    loop_testkit::Repo::at(root.join("repo"))
        .tasks(tasks)
        .create()
}

pub fn stub(name: &str) -> String {
    loop_testkit::agents::cmd(name)
}

/// A `POST /runs` body for the repo with the stub agent.
pub fn run_body(repo: &Path, agent: &str, extra: Value) -> Value {
    let mut config = json!({
        "agent": "command",
        "agent_cmd": stub(agent),
        "reviewer": false,
        "postmortem": false,
        "run_naming_mode": "spec_slug",
    });
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            config.insert(key.clone(), value.clone());
        }
    }
    json!({
        "spec_path": "specs/feature.md",
        "workspace_root": repo,
        "no_worktree": true,
        "config": config,
    })
}

/// One SSE frame.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// Reads frames from an SSE body until it ends or `until` says stop.
pub fn read_frames(body: impl Read, mut until: impl FnMut(&Frame) -> bool) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut current = Frame::default();
    for line in BufReader::new(body).lines() {
        let Ok(line) = line else { break };
        if line.is_empty() {
            if current.id.is_some() || !current.data.is_empty() {
                let frame = std::mem::take(&mut current);
                let stop = until(&frame);
                frames.push(frame);
                if stop {
                    break;
                }
            }
            continue;
        }
        if let Some(id) = line.strip_prefix("id:") {
            current.id = Some(id.trim().to_owned());
        } else if let Some(event) = line.strip_prefix("event:") {
            current.event = Some(event.trim().to_owned());
        } else if let Some(data) = line.strip_prefix("data:") {
            current
                .data
                .push_str(data.strip_prefix(' ').unwrap_or(data));
        }
    }
    frames
}

/// Submits a run (`POST /runs`) and returns its id, read through the API's own type.
pub fn submit(daemon: &Daemon, body: &Value) -> String {
    let created: loop_api::runs::RunEnvelope = client()
        .post(daemon.url("/runs"))
        .json(body)
        .send()
        .expect("POST /runs")
        .error_for_status()
        .expect("the run is created")
        .json()
        .expect("a run envelope");
    created.run.id.to_string()
}

/// The id of the run in a run document (`{"run": {...}}`, what `POST /runs` and
/// `GET /runs/{id}` answer), read through the API's own type so a renamed field fails here.
pub fn run_id(document: &Value) -> String {
    serde_json::from_value::<loop_api::runs::RunEnvelope>(document.clone())
        .unwrap_or_else(|err| panic!("a run envelope ({err}): {document}"))
        .run
        .id
        .to_string()
}

/// A `GET` answered with JSON.
pub fn get_json(daemon: &Daemon, path: &str) -> Value {
    client()
        .get(daemon.url(path))
        .send()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .json()
        .unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
}

/// Follows the run's events until it is in a terminal state; the final run, as JSON.
pub fn wait_for_end(daemon: &Daemon, run_id: &str) -> Value {
    let client = loop_client::blocking::Client::new(&daemon.base, None).expect("a client");
    let run_id = run_id.parse().expect("a run id");
    let view = client.wait(run_id).expect("the run ends");
    serde_json::to_value(view).expect("a run as JSON")
}

/// A file of a run's directory, wherever the run keeps it (its workspace's log dir or the
/// data dir's mirror).
pub fn run_file(repo: &Path, data_dir: &Path, run_id: &str, name: &str) -> PathBuf {
    let candidates = [
        data_dir.join(format!("runs/run-{run_id}/{name}")),
        repo.join(format!("logs/loop/run-{run_id}/{name}")),
    ];
    candidates
        .iter()
        .find(|path| path.exists())
        .unwrap_or(&candidates[0])
        .clone()
}
