//! A real `loopd` on a loopback port over a temp data dir, a git repository whose
//! `.loop/config` runs a stub agent, and `loopctl` pointed at that daemon.
//!
//! The `loopd` binary is the workspace's, beside `loopctl`'s. A test binary of `loopctl` has no
//! `CARGO_BIN_EXE_loopd`, and `cargo test -p loopctl` does not build it, so the first test that
//! needs it runs `cargo build -p loopd` once: a no-op when it is fresh, and never a stale daemon.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use serde_json::Value;

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

/// A running daemon, stopped with SIGTERM when dropped.
pub struct Daemon {
    child: Child,
    pub addr: String,
}

impl Daemon {
    /// A daemon on `listen` (`127.0.0.1:0` for any free port) over `data_dir`.
    pub fn start(data_dir: &Path, listen: &str, env: &[(&str, &str)]) -> Daemon {
        let mut command = Command::new(loopd_bin());
        command
            .args(["--listen", listen, "--data-dir"])
            .arg(data_dir)
            .env_remove("LOOPD_AUTH_TOKEN")
            .env_remove("LOOPD_LISTEN")
            .env_remove("LOOP_CONFIG")
            .env("RUST_LOG", "warn")
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
        let addr = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        // Drained, so a chatty daemon never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Daemon { child, addr }
    }

    /// SIGTERM, then waits for the daemon to exit.
    pub fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The runtime tests' stub agent `name`, as an `agent_cmd`.
pub fn stub(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../loop-runtime/tests/it/agents")
        .join(name);
    format!("sh {}", path.display())
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .status()
        .expect("git")
        .success();
    assert!(ok, "git {args:?}");
}

/// A repository with a spec and a plan of `tasks` tasks, a daemon, and `loopctl` for both.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub daemon: Daemon,
}

impl Project {
    /// The repository runs `agent_cmd` with no reviewer, no postmortem and the spec's name.
    pub fn new(agent_cmd: &str, tasks: usize) -> Project {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("repo");
        std::fs::create_dir_all(root.join("specs/planning")).expect("dirs");
        std::fs::create_dir_all(root.join(".loop")).expect("dirs");
        std::fs::write(
            root.join("specs/feature.md"),
            "# Feature\n\n**Status:** Draft\n**Last Updated:** 2026-11-20\n",
        )
        .expect("spec");
        let plan: String = (1..=tasks).map(|n| format!("- [ ] task {n}\n")).collect();
        std::fs::write(root.join("specs/planning/feature-plan.md"), plan).expect("plan");
        std::fs::write(
            root.join(".loop/config"),
            format!(
                "agent=command\nagent_cmd={agent_cmd}\nreviewer=false\npostmortem=false\n\
                 run_naming_mode=spec_slug\n"
            ),
        )
        .expect("config");
        std::fs::write(root.join(".gitignore"), "logs/\n").expect("ignore");
        git(&root, &["init", "-q", "-b", "main"]);
        git(&root, &["config", "user.name", "loop test"]);
        git(&root, &["config", "user.email", "loop@example.invalid"]);
        git(&root, &["add", "-A"]);
        git(&root, &["commit", "-qm", "start"]);
        let daemon = Daemon::start(&dir.path().join("data"), "127.0.0.1:0", &[]);
        Project { dir, daemon }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// Writes the feature plan afresh with `tasks` tasks to do (a run in the workspace itself
    /// ticks them off in place; the next run needs work left).
    pub fn fresh_plan(&self, tasks: usize) {
        let plan: String = (1..=tasks).map(|n| format!("- [ ] task {n}\n")).collect();
        std::fs::write(self.root().join("specs/planning/feature-plan.md"), plan).expect("plan");
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_loopctl"));
        command
            .args(args)
            .current_dir(self.root())
            .env("LOOPD_ADDR", &self.daemon.addr)
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

    /// Creates a run of the feature spec in the workspace itself; its id.
    pub fn create(&self, extra: &[&str]) -> String {
        let mut args = vec!["run", "specs/feature.md", "--no-worktree"];
        args.extend(extra);
        let run = self.json(&args);
        run["run"]["id"].as_str().expect("run id").to_owned()
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

/// Polls `check` every 20 ms for up to `limit`; panics with `what` when it never holds.
pub fn until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}
