//! A real `loopd` on a loopback port over a data dir, stopped when dropped.
//!
//! The daemon prints its address on the first line of its stderr (`listening on http://…`);
//! that is how a test started on port 0 learns the port, as a person would read it.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How to start a daemon: `loopd --listen <addr> --data-dir <dir> <args>`.
#[derive(Debug)]
pub struct Loopd {
    command: Command,
    listen: String,
    echo_warnings: bool,
}

impl Loopd {
    /// The daemon binary at `program` over `data_dir`, on any free loopback port.
    pub fn new(program: impl AsRef<OsStr>, data_dir: &Path) -> Loopd {
        Loopd::through(Command::new(program), data_dir)
    }

    /// Through `command`, a wrapper whose arguments end with the daemon binary (`prlimit …
    /// loopd`), over `data_dir`.
    pub fn through(mut command: Command, data_dir: &Path) -> Loopd {
        command.arg("--data-dir").arg(data_dir);
        // What a developer's shell may hold must not reach the daemon under test.
        for name in ["LOOPD_AUTH_TOKEN", "LOOPD_LISTEN", "LOOP_CONFIG"] {
            command.env_remove(name);
        }
        command.env("RUST_LOG", "warn");
        Loopd {
            command,
            listen: "127.0.0.1:0".to_owned(),
            echo_warnings: false,
        }
    }

    /// Listens on `addr` (a restarted daemon on the address of the one before).
    pub fn listen(mut self, addr: &str) -> Loopd {
        addr.clone_into(&mut self.listen);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Loopd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Loopd {
        self.command.env(key, value);
        self
    }

    /// Echoes the daemon's warnings and errors on this process's stderr (a load tool wants
    /// them seen; a test keeps its output quiet).
    pub fn echo_warnings(mut self) -> Loopd {
        self.echo_warnings = true;
        self
    }

    /// Starts it and waits for its address.
    pub fn start(self) -> Daemon {
        self.try_start().unwrap_or_else(|why| panic!("{why}"))
    }

    /// Starts it and waits for its address; what it said instead when it exits without one
    /// (a supervisor's view).
    pub fn try_start(mut self) -> Result<Daemon, String> {
        let mut child = self
            .command
            .args(["--listen", &self.listen])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start loopd");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        stderr.read_line(&mut line).expect("loopd's first line");
        let Some(base) = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .map(str::to_owned)
        else {
            // A daemon that did not say where it listens is not handed out, so no drop would
            // stop it: stop it here rather than leave it running after the test.
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no address in loopd's first line {line:?}"));
        };
        // Read to the end on a thread of its own: a daemon whose stderr pipe is full (64 KiB of
        // logs nobody reads) blocks in its next log line, and stops answering.
        let echo = self.echo_warnings;
        std::thread::spawn(move || {
            for line in stderr.lines() {
                let Ok(line) = line else { break };
                if echo && !line.contains(" INFO ") {
                    eprintln!("[loopd] {line}");
                }
            }
        });
        Ok(Daemon { child, base })
    }
}

/// A running daemon, stopped (SIGTERM, then SIGKILL after 10 s) when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl Daemon {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, and the exit status if it exits within `limit`.
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILL, as a crash or the OOM killer would.
    pub fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child.wait().expect("wait for loopd")
    }

    pub fn signal(&self, signal: Signal) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), signal);
    }

    /// SIGTERM, then SIGKILL if it has not exited within 10 s.
    pub fn stop(&mut self) {
        if self.terminate(Duration::from_secs(10)).is_none() {
            self.kill();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}
