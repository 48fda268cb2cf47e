//! Supervised child processes: agents and verification commands.
//!
//! Each child runs in its own process group, gets its stdin written and closed, and has stdout
//! and stderr drained concurrently in bounded chunks (an endless line or invalid UTF-8 costs no
//! more memory than a short one). It ends by exiting, or is stopped — the whole group, so
//! grandchildren go too — on a timeout, on silence, shortly after it reported its final result,
//! or on cancellation. After the child exits, its group is killed anyway so nothing it spawned
//! outlives the step.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

/// A line longer than this is handed on in pieces of this size.
const MAX_LINE: usize = 256 * 1024;
/// How long the group gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(1);
/// How long output is still drained after the child is gone (a grandchild may hold the pipe).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// The stderr kept for error classification.
const STDERR_TAIL: usize = 16 * 1024;

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub cwd: PathBuf,
    pub env: Vec<(OsString, OsString)>,
    pub env_remove: Vec<OsString>,
    /// Written to stdin, which is then closed.
    pub stdin: Vec<u8>,
}

impl Spec {
    /// `sh -c <command>` in `cwd`.
    pub fn shell(command: &str, cwd: &Path) -> Spec {
        Spec {
            program: "sh".into(),
            args: vec!["-c".into(), command.into()],
            cwd: cwd.to_owned(),
            ..Spec::default()
        }
    }
}

/// When to stop a child that has not exited.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    pub timeout: Option<Duration>,
    /// Stop after this long without a byte of output.
    pub idle: Option<Duration>,
    /// Stop this long after the sink reported [`LineEffect::Done`].
    pub after_done: Option<Duration>,
}

/// How the child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Exited,
    TimedOut,
    Idle,
    /// Stopped after its final result, as agents that linger need.
    StoppedAfterDone,
    Canceled,
}

/// What a supervised run produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub ended: Ended,
    /// The exit code, when the child exited by itself with one.
    pub exit_code: Option<i32>,
    pub stdout_bytes: u64,
    pub stderr_tail: String,
}

/// What the sink says about a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineEffect {
    Continue,
    /// The final result has arrived: the child may be stopped after `Limits::after_done`.
    Done,
}

/// Receives the child's output as lines (lossy UTF-8, without `\r\n`).
pub trait LineSink: Send {
    fn stdout_line(&mut self, line: &str) -> LineEffect;
    fn stderr_line(&mut self, line: &str);
}

enum Line {
    Out(String),
    Err(String),
}

/// Runs `spec` to its end under `limits`. Raw stdout bytes are appended to `raw` when given.
pub async fn run(
    spec: &Spec,
    limits: Limits,
    raw: Option<&Path>,
    sink: &mut dyn LineSink,
    cancel: &CancellationToken,
) -> io::Result<Outcome> {
    let mut command = tokio::process::Command::new(&spec.program);
    command
        .args(&spec.args)
        .current_dir(&spec.cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for name in &spec.env_remove {
        command.env_remove(name);
    }
    for (name, value) in &spec.env {
        command.env(name, value);
    }
    let mut child = command.spawn()?;
    let group = child.id().map(|pid| Pid::from_raw(pid as i32));

    let mut stdin = child.stdin.take();
    let input = spec.stdin.clone();
    let feeder = tokio::spawn(async move {
        if let Some(stdin) = stdin.as_mut() {
            // A child that exits before reading its input is not an error of ours.
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        }
        drop(stdin);
    });

    let raw_file = match raw {
        Some(path) => Some(
            tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await?,
        ),
        None => None,
    };
    let (lines, mut received) = mpsc::channel::<Line>(256);
    let stdout = child.stdout.take().map(|out| {
        let lines = lines.clone();
        tokio::spawn(read_lines(out, raw_file, lines, Line::Out))
    });
    let stderr = child
        .stderr
        .take()
        .map(|err| tokio::spawn(read_lines(err, None, lines.clone(), Line::Err)));
    drop(lines);

    let start = Instant::now();
    let far = start + Duration::from_secs(100 * 365 * 86_400);
    let deadline = limits.timeout.map_or(far, |t| start + t);
    let mut idle_deadline = limits.idle.map_or(far, |t| start + t);
    let mut done_deadline = far;
    let mut stderr_tail = String::new();
    let mut exit_status = None;
    let mut open = true;

    let ended = loop {
        tokio::select! {
            line = received.recv(), if open => match line {
                Some(line) => {
                    if let Some(idle) = limits.idle {
                        idle_deadline = Instant::now() + idle;
                    }
                    match line {
                        Line::Out(text) => {
                            if sink.stdout_line(&text) == LineEffect::Done
                                && let Some(after) = limits.after_done
                            {
                                done_deadline = done_deadline.min(Instant::now() + after);
                            }
                        }
                        Line::Err(text) => {
                            push_tail(&mut stderr_tail, &text);
                            sink.stderr_line(&text);
                        }
                    }
                }
                None => open = false,
            },
            status = child.wait(), if exit_status.is_none() => {
                exit_status = Some(status?);
                break Ended::Exited;
            }
            () = sleep_until(deadline) => break Ended::TimedOut,
            () = sleep_until(idle_deadline) => break Ended::Idle,
            () = sleep_until(done_deadline) => break Ended::StoppedAfterDone,
            () = cancel.cancelled() => break Ended::Canceled,
        }
    };

    if ended != Ended::Exited {
        stop_group(group, &mut child).await;
    } else if let Some(group) = group {
        // The child is gone; whatever it left running in its group goes too.
        let _ = killpg(group, Signal::SIGKILL);
    }

    // Hand on what is still in the pipes, but never wait on a descendant that escaped.
    let drain_until = Instant::now() + DRAIN_GRACE;
    while open {
        tokio::select! {
            line = received.recv() => match line {
                Some(Line::Out(text)) => { sink.stdout_line(&text); }
                Some(Line::Err(text)) => {
                    push_tail(&mut stderr_tail, &text);
                    sink.stderr_line(&text);
                }
                None => open = false,
            },
            () = sleep_until(drain_until) => break,
        }
    }
    feeder.abort();
    let stdout_bytes = match stdout {
        Some(task) if !open || task.is_finished() => task.await.unwrap_or(0),
        Some(task) => {
            task.abort();
            0
        }
        None => 0,
    };
    if let Some(task) = stderr {
        task.abort();
    }
    Ok(Outcome {
        ended,
        exit_code: exit_status.and_then(|status| status.code()),
        stdout_bytes,
        stderr_tail,
    })
}

/// SIGTERM to the group, then SIGKILL if it has not gone after a grace.
async fn stop_group(group: Option<Pid>, child: &mut tokio::process::Child) {
    let Some(group) = group else {
        let _ = child.kill().await;
        return;
    };
    let _ = killpg(group, Signal::SIGTERM);
    if tokio::time::timeout(TERM_GRACE, child.wait())
        .await
        .is_err()
    {
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait().await;
    }
    // Members that ignored SIGTERM while the leader exited.
    let _ = killpg(group, Signal::SIGKILL);
}

fn push_tail(tail: &mut String, line: &str) {
    tail.push_str(line);
    tail.push('\n');
    if tail.len() > STDERR_TAIL {
        let mut cut = tail.len() - STDERR_TAIL;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail.drain(..cut);
    }
}

/// Reads a pipe to its end: raw bytes to `raw`, lines to `lines`. Returns the bytes read.
async fn read_lines(
    mut pipe: impl AsyncRead + Unpin,
    mut raw: Option<tokio::fs::File>,
    lines: mpsc::Sender<Line>,
    wrap: fn(String) -> Line,
) -> u64 {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut total = 0u64;
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        total += n as u64;
        if let Some(file) = raw.as_mut()
            && file.write_all(&buf[..n]).await.is_err()
        {
            raw = None;
        }
        let mut rest = &buf[..n];
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            pending.extend_from_slice(&rest[..end]);
            rest = &rest[end + 1..];
            if lines.send(wrap(take_line(&mut pending))).await.is_err() {
                return total;
            }
        }
        pending.extend_from_slice(rest);
        while pending.len() >= MAX_LINE {
            let piece: Vec<u8> = pending.drain(..MAX_LINE).collect();
            let text = String::from_utf8_lossy(&piece).into_owned();
            if lines.send(wrap(text)).await.is_err() {
                return total;
            }
        }
    }
    if !pending.is_empty() {
        let _ = lines.send(wrap(take_line(&mut pending))).await;
    }
    if let Some(file) = raw.as_mut() {
        let _ = file.flush().await;
    }
    total
}

fn take_line(pending: &mut Vec<u8>) -> String {
    if pending.last() == Some(&b'\r') {
        pending.pop();
    }
    let text = String::from_utf8_lossy(pending).into_owned();
    pending.clear();
    text
}
