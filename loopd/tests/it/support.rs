//! Starting the daemon binary, a scratch repository, and reading SSE.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A running daemon, stopped (SIGTERM) when dropped.
pub struct Daemon {
    pub child: Child,
    pub base: String,
}

impl Daemon {
    pub fn start(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_with(
            &mut Command::new(env!("CARGO_BIN_EXE_loopd")),
            data_dir,
            extra,
            env,
        )
    }

    /// Starts the daemon through `command` (the binary itself, or a wrapper such as `prlimit`
    /// whose arguments end with it).
    pub fn start_with(
        command: &mut Command,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        command
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env_remove("LOOPD_AUTH_TOKEN")
            .env_remove("LOOPD_LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start loopd");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        stderr.read_line(&mut line).expect("first line");
        let base = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        // Read to the end on a thread of its own: a daemon whose stderr pipe is full (64 KiB of
        // logs nobody reads) blocks in its next log line, and stops answering.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Daemon { child, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, and the exit status within `limit`.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.terminate(Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(args)
        .current_dir(dir)
        .status()
        .expect("git")
        .success();
    assert!(ok, "git {args:?}");
}

/// A git repository with a spec, a plan of `tasks` tasks, and a `.gitignore` for the logs.
pub fn repo(root: &Path, tasks: usize) -> PathBuf {
    let repo = root.join("repo");
    std::fs::create_dir_all(repo.join("specs/planning")).expect("dirs");
    std::fs::write(
        repo.join("specs/feature.md"),
        "# Feature\n\n**Status:** Draft\n",
    )
    .expect("spec");
    let plan: String = (1..=tasks).map(|n| format!("- [ ] task {n}\n")).collect();
    std::fs::write(repo.join("specs/planning/feature-plan.md"), plan).expect("plan");
    std::fs::write(repo.join(".gitignore"), "logs/\n").expect("ignore");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "user.name", "loop test"]);
    git(&repo, &["config", "user.email", "loop@example.invalid"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "start"]);
    repo
}

pub fn stub(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../loop-runtime/tests/it/agents")
        .join(name);
    format!("sh {}", path.display())
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

/// Polls `GET /runs/{id}` until the run is in a terminal state.
pub fn wait_for_end(daemon: &Daemon, run_id: &str) -> Value {
    let client = client();
    for _ in 0..600 {
        let run: Value = client
            .get(daemon.url(&format!("/runs/{run_id}")))
            .send()
            .expect("get")
            .json()
            .expect("json");
        let status = run["run"]["status"].as_str().unwrap_or("").to_owned();
        if ["COMPLETED", "FAILED", "CANCELED"].contains(&status.as_str()) {
            return run["run"].clone();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("run {run_id} did not end");
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
