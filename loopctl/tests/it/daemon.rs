//! A real `loopd` on a loopback port over a temp data dir, a git repository whose
//! `.loop/config` runs a stub agent, and `loopctl` pointed at that daemon.
//!
//! The `loopd` binary is the workspace's, beside `loopctl`'s. A test binary of `loopctl` has no
//! `CARGO_BIN_EXE_loopd`, and `cargo test -p loopctl` does not build it, so the first test that
//! needs it runs `cargo build -p loopd` once: a no-op when it is fresh, and never a stale daemon.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Once;

use loop_api::runs::RunEnvelope;
use loop_core::projection::RunView;
use loop_testkit::Scratch;
use serde_json::Value;

/// The run of a `{"run": …}` document (more fields beside it, as `inspect`'s, are left).
pub fn run_of(document: &Value) -> RunView {
    serde_json::from_value::<RunEnvelope>(document.clone())
        .unwrap_or_else(|e| panic!("not a run document ({e}): {document}"))
        .run
}

use crate::support::text;

/// The `loopd` binary, built (or found fresh) first.
pub fn loopd_bin() -> PathBuf {
    static BUILD: Once = Once::new();
    let path = Path::new(env!("CARGO_BIN_EXE_loopctl")).with_file_name("loopd");
    BUILD.call_once(|| {
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "-q", "-p", "loopd"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if path.parent().and_then(Path::file_name) == Some("release".as_ref()) {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("run cargo build -p loopd");
        assert!(status.success(), "cargo build -p loopd failed");
    });
    assert!(
        path.exists(),
        "no loopd at {}: build it with `cargo build -p loopd`",
        path.display()
    );
    path
}

pub use loop_testkit::Daemon;

/// A daemon on `listen` (`127.0.0.1:0` for any free port) over `data_dir`.
pub fn start_daemon(data_dir: &Path, listen: &str, env: &[(&str, &str)]) -> Daemon {
    let mut loopd = loop_testkit::Loopd::new(loopd_bin(), data_dir).listen(listen);
    for (key, value) in env {
        loopd = loopd.env(key, value);
    }
    loopd.start()
}

/// The stub agent `name`, as an `agent_cmd`.
pub fn stub(name: &str) -> String {
    loop_testkit::agents::cmd(name)
}

/// A repository with a spec and a plan of `tasks` tasks, a daemon, and `loopctl` for both.
pub struct Project {
    pub scratch: Scratch,
    pub daemon: Daemon,
}

impl Project {
    /// The repository runs `agent_cmd` with no reviewer, no postmortem and the spec's name.
    pub fn new(agent_cmd: &str, tasks: usize) -> Project {
        let scratch = Scratch::with(|repo| repo.tasks(tasks).command_agent(agent_cmd, ""));
        let daemon = start_daemon(&scratch.data_dir(), "127.0.0.1:0", &[]);
        Project { scratch, daemon }
    }

    pub fn root(&self) -> PathBuf {
        self.scratch.repo()
    }

    /// Writes the feature plan afresh with `tasks` tasks to do (a run in the workspace itself
    /// ticks them off in place; the next run needs work left).
    pub fn fresh_plan(&self, tasks: usize) {
        self.scratch.fresh_plan(tasks);
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_loopctl"));
        command
            .args(args)
            .current_dir(self.root())
            .env("LOOPD_ADDR", &self.daemon.base)
            .env_remove("LOOPD_TOKEN")
            .env_remove("LOOP_CONFIG")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        command
    }

    pub fn loopctl(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run loopctl")
    }

    /// Runs `args` (with `--json`), which must succeed, and reads its one JSON document.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let output = self.loopctl(&args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            text(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: not one JSON document ({e}): {}",
                text(&output.stdout)
            )
        })
    }

    /// Runs `args` (with `--json`), which must succeed, and reads the run its document holds
    /// (`inspect`, `run`, `pause`, … answer with the API's `{"run": …}`) as the API's type.
    pub fn run(&self, args: &[&str]) -> RunView {
        run_of(&self.json(args))
    }

    /// Creates a run of the feature spec in the workspace itself; its id.
    pub fn create(&self, extra: &[&str]) -> String {
        let mut args = vec!["run", "specs/feature.md", "--no-worktree"];
        args.extend(extra);
        self.run(&args).id.to_string()
    }

    /// Waits for run `id` to end; the final run.
    pub fn wait(&self, id: &str) -> Value {
        let output = self.loopctl(&["wait", id, "--json"]);
        serde_json::from_slice::<Value>(&output.stdout).expect("one JSON document")["run"].clone()
    }

    /// The text of each step's log, in step order, for the steps that have one.
    pub fn step_logs(&self, id: &str) -> Vec<(String, String)> {
        let inspect = self.json(&["inspect", id]);
        inspect["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .filter_map(|step| {
                let path = step["output_path"].as_str()?;
                let log = std::fs::read_to_string(path).expect("step log");
                Some((step["status"].as_str().unwrap_or("").to_owned(), log))
            })
            .collect()
    }
}

/// Reads everything from `reader` on a thread, for a child whose output is read at its end.
pub fn collect(mut reader: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = reader.read_to_string(&mut text);
        text
    })
}

pub use loop_testkit::until;
