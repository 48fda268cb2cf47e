//! Supervised child processes: agents and verification commands.
//!
//! Each child runs in its own process group, gets its stdin written and closed, and has stdout
//! and stderr drained concurrently in bounded chunks (an endless line or invalid UTF-8 costs no
//! more memory than a short one). It ends by exiting, or is stopped — the whole group, so
//! grandchildren go too — on a timeout, on silence, shortly after it reported its final result,
//! or on cancellation. After the child exits, its group is killed anyway so nothing it spawned
//! outlives the step.
//!
//! No child outlives the process that started it unrecorded:
//!
//! - the child gets a parent-death signal (SIGKILL), so it dies with the daemon even on kill -9
//!   (armed by a [`trampoline`] when the program offers one, else between fork and exec);
//! - its process group is written to the runtime's ledger ([`ledger`]) before it is given its
//!   input, and crossed out once the group is gone, so whoever takes the data dir next (a
//!   restarted daemon, `loopctl exec`) kills what a dead one left of the group (a tool command
//!   the agent had started, say) before anything runs again ([`sweep`]);
//! - started through the trampoline, its group is also told to the program's [`reaper`],
//!   which kills it should the program die, whether or not anyone takes the data dir next;
//! - it never sees the daemon's secrets: every `LOOPD_*` variable is removed from its
//!   environment.

mod keeper;
pub mod ledger;
pub mod reaper;
pub mod trampoline;
mod tree;

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

pub use ledger::sweep;

use crate::raw_stream::RawStream;

/// A line longer than this is handed on in pieces of about this size ([`LineSink::stdout_part`]).
const MAX_LINE: usize = 256 * 1024;
/// The most of a child's raw stdout kept in its raw file; the rest is still read and parsed.
pub const RAW_OUTPUT_CAP: u64 = 256 * 1024 * 1024;
/// How long the group gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(1);
/// How long output is still drained after the child is gone (a grandchild may hold the pipe).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// The stderr kept for error classification.
const STDERR_TAIL: usize = 16 * 1024;
/// Batches of lines (one read each) on their way from the pipes to the sink.
const BATCHES_IN_FLIGHT: usize = 8;

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
    /// Tell the sink ([`LineSink::quiet`]) each time the child has printed nothing this long.
    pub heartbeat: Option<Duration>,
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
///
/// A stdout line longer than 256 KiB arrives in pieces: [`LineSink::stdout_part`] for each
/// piece but the last, then [`LineSink::stdout_line`] with the last. Pieces end on character
/// boundaries. A sink that reads text may treat each piece as a line (the default); one that
/// parses lines joins them ([`LineJoiner`]).
pub trait LineSink: Send {
    fn stdout_line(&mut self, line: &str) -> LineEffect;
    fn stderr_line(&mut self, line: &str);
    /// A piece of a long stdout line; the line goes on in the next call.
    fn stdout_part(&mut self, part: &str) {
        let _ = self.stdout_line(part);
    }
    /// The child has printed nothing for a while ([`Limits::heartbeat`]); `running` is how
    /// long it has run.
    fn quiet(&mut self, running: Duration) {
        let _ = running;
    }
    /// The lines of one read of a pipe follow, until [`LineSink::batch_end`]: a sink that
    /// writes them can gather them into one write ([`crate::step_output::StepOutput::hold`]).
    fn batch_start(&mut self) {}
    /// The lines of one read have all been handed on.
    fn batch_end(&mut self) {}
}

/// Whether `error` says the machine is out of something that comes back (file descriptors,
/// processes, memory), so trying again later may work.
pub fn is_exhaustion(error: &io::Error) -> bool {
    use nix::errno::Errno;
    error.raw_os_error().is_some_and(|code| {
        [Errno::EMFILE, Errno::ENFILE, Errno::EAGAIN, Errno::ENOMEM]
            .iter()
            .any(|errno| *errno as i32 == code)
    })
}

/// Joins the pieces of long lines for a sink that parses whole lines, up to a bound.
#[derive(Debug, Default)]
pub struct LineJoiner {
    pending: String,
    overflow: bool,
}

/// The longest line a [`LineJoiner`] joins; a longer one is dropped whole.
pub const MAX_JOINED_LINE: usize = 64 * 1024 * 1024;

impl LineJoiner {
    /// Keeps a piece of a long line.
    pub fn part(&mut self, part: &str) {
        if self.overflow || self.pending.len() + part.len() > MAX_JOINED_LINE {
            self.overflow = true;
            self.pending = String::new();
        } else {
            self.pending.push_str(part);
        }
    }

    /// The whole line that `last` ends; `None` when it was over [`MAX_JOINED_LINE`].
    pub fn line<'a>(&'a mut self, last: &'a str) -> Option<std::borrow::Cow<'a, str>> {
        if std::mem::take(&mut self.overflow) {
            self.pending = String::new();
            return None;
        }
        if self.pending.is_empty() {
            return Some(std::borrow::Cow::Borrowed(last));
        }
        let mut whole = std::mem::take(&mut self.pending);
        whole.push_str(last);
        Some(std::borrow::Cow::Owned(whole))
    }
}

enum Line {
    Out(String),
    OutPart(String),
    Err(String),
}

/// Runs `spec` to its end under `limits`. Raw stdout bytes are appended to `raw` when given
/// (up to [`RAW_OUTPUT_CAP`]). The child's group is in the ledger of the runtime whose task
/// calls this ([`ledger::scope`]) from before it reads its input until it is gone.
pub async fn run(
    spec: &Spec,
    limits: Limits,
    raw: Option<&RawStream>,
    sink: &mut dyn LineSink,
    cancel: &CancellationToken,
) -> io::Result<Outcome> {
    let path_var = spec
        .env
        .iter()
        .rev()
        .find(|(name, _)| name == "PATH")
        .map(|(_, value)| value.clone())
        .or_else(|| {
            (!spec.env_remove.iter().any(|name| name == "PATH"))
                .then(|| std::env::var_os("PATH"))
                .flatten()
        });
    let through_self = trampoline::command(&spec.program, &spec.cwd, path_var.as_deref());
    let through_trampoline = through_self.is_some();
    let mut command = match through_self {
        Some(command) => command?,
        None => {
            let mut command = tokio::process::Command::new(&spec.program);
            ledger::die_with_parent(command.as_std_mut());
            command
        }
    };
    command
        .args(&spec.args)
        .current_dir(&spec.cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("LOOPD_") {
            command.env_remove(name);
        }
    }
    for name in &spec.env_remove {
        command.env_remove(name);
    }
    for (name, value) in &spec.env {
        command.env(name, value);
    }
    let mut child = command.spawn()?;
    let group = child.id().map(|pid| Pid::from_raw(pid as i32));
    // Written before the child has its input: until then it has done nothing worth keeping.
    let _entry = group.and_then(|group| ledger::enter(group, &spec.program));
    // Started through this program, the child is this program's reaper's too (told when its
    // group is gone, below, when this is dropped).
    let _reaped = group
        .filter(|_| through_trampoline)
        .map(reaper::reap_with_program);

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

    let raw_file = raw.cloned();
    // A batch is the lines of one read (at most 64 KiB, or a piece of a long line): a few
    // batches in flight bound the memory as well as a few hundred lines did.
    let (lines, mut received) = mpsc::channel::<Vec<Line>>(BATCHES_IN_FLIGHT);
    let stdout = child.stdout.take().map(|out| {
        let lines = lines.clone();
        tokio::spawn(read_lines(out, raw_file, lines, Stream::Stdout))
    });
    let stderr = child
        .stderr
        .take()
        .map(|err| tokio::spawn(read_lines(err, None, lines.clone(), Stream::Stderr)));
    drop(lines);

    let start = Instant::now();
    let far = start + Duration::from_secs(100 * 365 * 86_400);
    let deadline = limits.timeout.map_or(far, |t| start + t);
    let mut idle_deadline = limits.idle.map_or(far, |t| start + t);
    let mut done_deadline = far;
    let mut quiet_deadline = limits.heartbeat.map_or(far, |t| start + t);
    let mut stderr_tail = String::new();
    let mut exit_status = None;
    let mut open = true;

    let ended = loop {
        tokio::select! {
            batch = received.recv(), if open => match batch {
                Some(batch) => {
                    let now = Instant::now();
                    if let Some(idle) = limits.idle {
                        idle_deadline = now + idle;
                    }
                    if let Some(heartbeat) = limits.heartbeat {
                        quiet_deadline = now + heartbeat;
                    }
                    if hand_on(batch, sink, &mut stderr_tail) == LineEffect::Done
                        && let Some(after) = limits.after_done
                    {
                        done_deadline = done_deadline.min(Instant::now() + after);
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
            () = sleep_until(quiet_deadline) => {
                sink.quiet(start.elapsed());
                quiet_deadline = limits.heartbeat.map_or(far, |t| Instant::now() + t);
            }
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
            batch = received.recv() => match batch {
                Some(batch) => { hand_on(batch, sink, &mut stderr_tail); }
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

/// Hands the lines of one read to `sink`; `Done` when a stdout line said so.
fn hand_on(batch: Vec<Line>, sink: &mut dyn LineSink, stderr_tail: &mut String) -> LineEffect {
    let mut effect = LineEffect::Continue;
    sink.batch_start();
    for line in batch {
        match line {
            Line::Out(text) => {
                if sink.stdout_line(&text) == LineEffect::Done {
                    effect = LineEffect::Done;
                }
            }
            Line::OutPart(text) => sink.stdout_part(&text),
            Line::Err(text) => {
                push_tail(stderr_tail, &text);
                sink.stderr_line(&text);
            }
        }
    }
    sink.batch_end();
    effect
}

/// SIGTERM to the group, then SIGKILL if it has not gone after a grace.
async fn stop_group(group: Option<Pid>, child: &mut tokio::process::Child) {
    let Some(group) = group else {
        let _ = child.kill().await;
        return;
    };
    // The group's leader is the child's keeper when started through the trampoline: it passes
    // the SIGTERM on to descendants that left the group.
    let _ = killpg(group, Signal::SIGTERM);
    if tokio::time::timeout(TERM_GRACE, child.wait())
        .await
        .is_err()
    {
        // Below the leader first (what left the group too), while the leader still holds them.
        let _ = tokio::task::spawn_blocking(move || {
            tree::kill(group, Signal::SIGKILL, false, TERM_GRACE)
        })
        .await;
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

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn line(self, text: String) -> Line {
        match self {
            Stream::Stdout => Line::Out(text),
            Stream::Stderr => Line::Err(text),
        }
    }

    fn part(self, text: String) -> Line {
        match self {
            Stream::Stdout => Line::OutPart(text),
            // Nobody parses stderr: a piece is a line of its own.
            Stream::Stderr => Line::Err(text),
        }
    }
}

/// Reads a pipe to its end: raw bytes to `raw` (up to [`RAW_OUTPUT_CAP`]), lines to `lines`,
/// the lines of one read in one batch. Returns the bytes read.
///
/// The raw bytes are held, or written with a plain `write(2)` on this task ([`RawStream`]): a
/// write into the page cache takes microseconds, where `tokio::fs` took a round trip through
/// the blocking pool per read before the next read could start.
async fn read_lines(
    mut pipe: impl AsyncRead + Unpin,
    mut raw: Option<RawStream>,
    lines: mpsc::Sender<Vec<Line>>,
    stream: Stream,
) -> u64 {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut total = 0u64;
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(file) = raw.as_mut() {
            let room = RAW_OUTPUT_CAP.saturating_sub(total);
            let keep = n.min(usize::try_from(room).unwrap_or(usize::MAX));
            if keep == 0 || !file.write(&buf[..keep]) {
                raw = None;
            }
        }
        total += n as u64;
        let mut batch = Vec::new();
        let mut rest = &buf[..n];
        while let Some(end) = newline(rest) {
            let line = if pending.is_empty() {
                // The whole line is in this read: one copy, straight into its string.
                text_of(&rest[..end])
            } else {
                pending.extend_from_slice(&rest[..end]);
                take_line(&mut pending)
            };
            rest = &rest[end + 1..];
            batch.push(stream.line(line));
        }
        pending.extend_from_slice(rest);
        while pending.len() >= MAX_LINE {
            let cut = char_boundary(&pending, MAX_LINE);
            let piece: Vec<u8> = pending.drain(..cut).collect();
            batch.push(stream.part(String::from_utf8_lossy(&piece).into_owned()));
        }
        if !batch.is_empty() && lines.send(batch).await.is_err() {
            return total;
        }
    }
    if !pending.is_empty() {
        let _ = lines.send(vec![stream.line(take_line(&mut pending))]).await;
    }
    total
}

/// Where to cut `bytes` at about `at` without splitting a UTF-8 character (when they are UTF-8
/// at all): back up over at most three continuation bytes.
fn char_boundary(bytes: &[u8], at: usize) -> usize {
    let mut cut = at.min(bytes.len());
    for _ in 0..3 {
        if cut == 0 || cut >= bytes.len() || (bytes[cut] & 0b1100_0000) != 0b1000_0000 {
            break;
        }
        cut -= 1;
    }
    if cut == 0 { at.min(bytes.len()) } else { cut }
}

fn take_line(pending: &mut Vec<u8>) -> String {
    let text = text_of(pending);
    pending.clear();
    text
}

/// A line's bytes as text, without a final `\r`; invalid UTF-8 replaced.
fn text_of(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // `from_utf8` checks a valid line faster than the lossy decoder walks it.
    match std::str::from_utf8(line) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(line).into_owned(),
    }
}

/// The first `\n` in `bytes`, eight bytes at a time (a byte-by-byte search was the capture
/// path's largest own cost).
fn newline(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const NEWLINES: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in words.by_ref() {
        let x = u64::from_ne_bytes(word.try_into().unwrap_or([0; 8])) ^ NEWLINES;
        // A zero byte of `x` (a newline in `word`) sets its high bit here.
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            return word.iter().position(|b| *b == b'\n').map(|i| at + i);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|b| *b == b'\n')
        .map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use super::{newline, text_of};

    #[test]
    fn finds_the_first_newline_as_a_plain_search_does() {
        let mut cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\n".to_vec(),
            b"no newline at all".to_vec(),
            b"0123456\n89".to_vec(),
            b"01234567\n".to_vec(),
            b"0123456789abcdef0123\n\n".to_vec(),
            "h\u{e9}llo \u{2603}\nrest".as_bytes().to_vec(),
            vec![0x8a; 40],
            vec![0x0a ^ 0x80; 17],
        ];
        for len in 0..40 {
            let mut bytes = vec![b'x'; len];
            bytes.push(b'\n');
            bytes.extend_from_slice(b"tail\n");
            cases.push(bytes);
        }
        for bytes in cases {
            let plain = bytes.iter().position(|b| *b == b'\n');
            assert_eq!(newline(&bytes), plain, "{bytes:?}");
        }
    }

    #[test]
    fn a_line_loses_its_carriage_return_and_keeps_invalid_bytes_visible() {
        assert_eq!(text_of(b"plain"), "plain");
        assert_eq!(text_of(b"crlf\r"), "crlf");
        assert_eq!(text_of(b"\r"), "");
        assert_eq!(text_of(b"bad \xff byte"), "bad \u{fffd} byte");
    }
}
