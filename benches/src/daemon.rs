//! The real `loopd` binary for the load tools (`src/bin/loopd_load/`), started through
//! `loop-testkit` as the test suites start it, its memory and CPU read from `/proc`, and a
//! `loop-client` to talk to it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

pub use loop_testkit::Daemon;

/// The `loopd` binary: `$LOOPD_BIN`, else the one beside the running executable (same target
/// directory and profile: `cargo build --release -p loopd -p loop-benches`).
pub fn loopd_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("LOOPD_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("exe dir");
    // `target/release/loopd` beside `target/release/loopd_load`, or one level up from `deps/`.
    for candidate in [dir.join("loopd"), dir.join("../loopd")] {
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "no loopd binary beside {}: build it (cargo build --release -p loopd) or set LOOPD_BIN",
        exe.display()
    );
}

/// A sibling binary of the running executable (`noop_agent`), or `$NOOP_AGENT`.
pub fn noop_agent_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("NOOP_AGENT") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("exe dir");
    for candidate in [dir.join("noop_agent"), dir.join("../noop_agent")] {
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("no noop_agent beside {}: set NOOP_AGENT", exe.display());
}

/// Starts `loopd --data-dir <data_dir> <extra>` on a free loopback port, its warnings echoed.
pub fn start(data_dir: &Path, extra: &[&str]) -> Daemon {
    loop_testkit::Loopd::new(loopd_bin(), data_dir)
        .args(extra)
        .echo_warnings()
        .start()
}

/// A client of `daemon` over `http` (a load tool picks its own connection pool).
pub fn api(daemon: &Daemon, http: reqwest::Client) -> loop_client::Client {
    loop_client::Client::with_http(&daemon.base, None, http)
}

/// What the load tools read of a daemon's process.
pub trait Measured {
    /// `VmRSS`, `VmHWM` and threads from `/proc/<pid>/status`.
    fn memory(&self) -> Memory;
    /// User + system CPU time so far.
    fn cpu(&self) -> Duration;
}

impl Measured for Daemon {
    fn memory(&self) -> Memory {
        memory_of(self.pid())
    }

    fn cpu(&self) -> Duration {
        cpu_of(self.pid())
    }
}

/// Resident memory of a process, in bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    pub rss: u64,
    pub hwm: u64,
    pub threads: u64,
    /// The anonymous part of `rss` (heap, stacks): what grows with the work.
    pub anon: u64,
    /// The part of `rss` that is mapped files, the program's own binary first of all.
    pub file: u64,
}

pub fn memory_of(pid: u32) -> Memory {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Memory {
        rss: field("VmRSS:") * 1024,
        hwm: field("VmHWM:") * 1024,
        threads: field("Threads:"),
        anon: field("RssAnon:") * 1024,
        file: field("RssFile:") * 1024,
    }
}

/// Open file descriptors of a process: (all, those on a file whose name ends with `suffix`).
pub fn open_files(pid: u32, suffix: &str) -> (usize, usize) {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return (0, 0);
    };
    let mut all = 0;
    let mut matching = 0;
    for entry in entries.flatten() {
        all += 1;
        if std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().ends_with(suffix))
        {
            matching += 1;
        }
    }
    (all, matching)
}

pub fn cpu_of(pid: u32) -> Duration {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) in parentheses.
    let rest = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after `) `.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Unix time in milliseconds, as events' `ts_ms`.
pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// A `POST /runs` body: `agent=command` with `agent_cmd`, no worktree, spec-slug naming, no
/// postmortem, and `config` on top.
pub fn run_body(repo: &Path, agent_cmd: &str, config: Value) -> Value {
    let mut all = json!({
        "agent": "command",
        "agent_cmd": agent_cmd,
        "run_naming_mode": "spec_slug",
        "postmortem": false,
        "agent_idle_timeout_sec": 0,
    });
    if let (Some(all), Some(config)) = (all.as_object_mut(), config.as_object()) {
        for (key, value) in config {
            all.insert(key.clone(), value.clone());
        }
    }
    json!({
        "spec_path": loop_testkit::repo::SPEC,
        "workspace_root": repo,
        "no_worktree": true,
        "config": all,
    })
}
