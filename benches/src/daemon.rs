//! The real `loopd` binary for the load tools (`src/bin/loopd_load.rs`): started on an ephemeral
//! port (its address read from the first line of its stderr, as `loopd`'s own tests do), its
//! memory read from `/proc`, and a minimal reader of its server-sent events.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// A running daemon, stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    pub base: String,
    pub pid: u32,
}

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

impl Daemon {
    /// Starts `loopd --listen 127.0.0.1:0 --data-dir <data_dir> <extra>`.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Daemon {
        let mut child = Command::new(loopd_bin())
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env_remove("LOOPD_AUTH_TOKEN")
            .env_remove("LOOPD_LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start loopd");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        stderr.read_line(&mut line).expect("loopd's first line");
        let base = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        // Keep draining its stderr (it may write more), echoing all but its INFO lines.
        std::thread::spawn(move || {
            for line in stderr.lines() {
                let Ok(line) = line else { break };
                if !line.contains(" INFO ") {
                    eprintln!("[loopd] {line}");
                }
            }
        });
        let pid = child.id();
        Daemon { child, base, pid }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `VmRSS` and `VmHWM` (peak RSS) from `/proc/<pid>/status`, in bytes.
    pub fn memory(&self) -> Memory {
        memory_of(self.pid)
    }

    /// User + system CPU time of the daemon so far (`/proc/<pid>/stat`, 10 ms ticks).
    pub fn cpu(&self) -> Duration {
        cpu_of(self.pid)
    }

    /// SIGTERM, and wait up to `limit` before SIGKILL.
    pub fn stop(&mut self, limit: Duration) {
        let pid = nix::unistd::Pid::from_raw(self.pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + limit;
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
        self.stop(Duration::from_secs(10));
    }
}

/// Resident memory of a process, in bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    pub rss: u64,
    pub hwm: u64,
    pub threads: u64,
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
        "spec_path": crate::scratch::SPEC,
        "workspace_root": repo,
        "no_worktree": true,
        "config": all,
    })
}

/// One server-sent event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// Reads frames from a streaming response, chunk by chunk.
#[derive(Debug)]
pub struct SseReader {
    response: reqwest::Response,
    buf: Vec<u8>,
    /// Body bytes read so far.
    pub bytes: u64,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> SseReader {
        SseReader {
            response,
            buf: Vec::new(),
            bytes: 0,
        }
    }

    /// The next frame; `None` when the stream ends (or fails).
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&block[..end]);
                let mut frame = Frame::default();
                let mut any = false;
                for line in text.lines() {
                    if let Some(id) = line.strip_prefix("id:") {
                        frame.id = Some(id.trim().to_owned());
                        any = true;
                    } else if let Some(event) = line.strip_prefix("event:") {
                        frame.event = Some(event.trim().to_owned());
                        any = true;
                    } else if let Some(data) = line.strip_prefix("data:") {
                        if !frame.data.is_empty() {
                            frame.data.push('\n');
                        }
                        frame.data.push_str(data.strip_prefix(' ').unwrap_or(data));
                        any = true;
                    }
                }
                if any {
                    return Some(frame);
                }
                continue;
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => {
                    self.bytes += chunk.len() as u64;
                    self.buf.extend_from_slice(&chunk);
                }
                Ok(None) | Err(_) => return None,
            }
        }
    }
}
