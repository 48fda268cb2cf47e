//! A step's text output: the `.log` file, the last lines for `.tail.txt`, and the live channel.
//!
//! Text is appended a whole line at a time, so every live chunk starts and ends on a UTF-8
//! boundary and its offset is the byte offset of the chunk in the `.log` file: a reader that
//! has the file up to some offset can continue from the live channel without a gap. A chunk is
//! written to the file before it goes live.
//!
//! The `.tail.txt` of a log of at most [`TAIL_LINES`] lines, none of them cut, holds exactly
//! what the log holds: it is then a hard link to the log instead of a second file. A new inode
//! was the largest cost of a step on the benchmark machine's ext4, and most step logs (a
//! verification's, an agent's short answer) are that short.
//!
//! Lines that arrive together (one read of a child's pipe) can be held and released as one
//! write and one live chunk ([`StepOutput::hold`]): a write and a chunk per line capped capture
//! at 125–225 MB/s with 1 KiB lines and 36 MB/s with 100 B lines.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use loop_core::{RunId, StepId};
use tokio::sync::broadcast;

/// Lines kept for `.tail.txt`.
pub const TAIL_LINES: usize = 200;
/// A tail line longer than this is cut (the `.log` keeps it whole).
const TAIL_LINE_MAX: usize = 2048;
/// Held lines are released once they are this large, whatever the holder says (a chunk is
/// at most this plus one line).
const HOLD_MAX: usize = 64 * 1024;
/// The most output kept in memory while the disk is full; more fails the step's log, as any
/// write error did before.
const UNWRITTEN_MAX: usize = 64 << 20;

/// A piece of a step's text output, as the live channel carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub run_id: RunId,
    pub step_id: StepId,
    /// Byte offset of `content` in the step's `.log` file.
    pub offset: u64,
    pub content: String,
}

/// Writes one step's text output.
#[derive(Debug)]
pub struct StepOutput {
    run_id: RunId,
    step_id: StepId,
    log: File,
    log_path: PathBuf,
    /// Bytes written to the file (and sent live).
    offset: u64,
    lines: u64,
    tail: VecDeque<String>,
    /// A line longer than [`TAIL_LINE_MAX`] was cut in the tail.
    cut: bool,
    live: broadcast::Sender<Chunk>,
    /// An error writing the log other than a full disk: the step's log fails at its end.
    failed: Option<io::Error>,
    /// What the log could not take because the disk is full: the bytes that follow the file's
    /// end (`offset` counts them), written as soon as the file takes them.
    unwritten: Vec<u8>,
    /// (bytes, lines) once [`StepOutput::finish`] succeeded.
    finished: Option<(u64, u64)>,
    /// Lines held for one write, after `offset`.
    pending: String,
    held: bool,
}

impl StepOutput {
    pub fn create(
        run_id: RunId,
        step_id: StepId,
        log_path: &Path,
        live: broadcast::Sender<Chunk>,
    ) -> io::Result<StepOutput> {
        // A log of this name from before may have other names (its tail, its raw stream, its
        // mirror): it is left to them, and this log is a new file.
        if std::fs::symlink_metadata(log_path).is_ok_and(|meta| {
            use std::os::unix::fs::MetadataExt;
            meta.nlink() > 1
        }) {
            std::fs::remove_file(log_path)?;
        }
        Ok(StepOutput {
            run_id,
            step_id,
            log: File::create(log_path)?,
            log_path: log_path.to_owned(),
            offset: 0,
            lines: 0,
            tail: VecDeque::with_capacity(TAIL_LINES),
            cut: false,
            live,
            failed: None,
            unwritten: Vec::new(),
            finished: None,
            pending: String::new(),
            held: false,
        })
    }

    /// Appends one line of text (a newline is added): written and sent live at once, or with
    /// the other held lines at [`StepOutput::release`].
    pub fn line(&mut self, text: &str) {
        self.pending.reserve(text.len() + 1);
        self.pending.push_str(text);
        self.pending.push('\n');
        self.lines += 1;
        let mut cut = text.len().min(TAIL_LINE_MAX);
        self.cut |= cut < text.len();
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        // The oldest tail line's buffer is reused: no allocation per line once the tail is full.
        let mut kept = if self.tail.len() == TAIL_LINES {
            self.tail.pop_front().unwrap_or_default()
        } else {
            String::new()
        };
        kept.clear();
        kept.push_str(&text[..cut]);
        self.tail.push_back(kept);
        if !self.held || self.pending.len() >= HOLD_MAX {
            self.emit();
        }
    }

    /// Holds the lines that follow until [`StepOutput::release`], to write them at once.
    pub fn hold(&mut self) {
        self.held = true;
    }

    /// Writes the held lines and sends them live as one chunk.
    pub fn release(&mut self) {
        self.held = false;
        self.emit();
    }

    /// Writes what is pending to the file, then sends it live.
    fn emit(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let content = std::mem::take(&mut self.pending);
        if self.failed.is_none() {
            // Keep the step going either way (the live channel and tail still work): a full
            // disk is waited out at the end, another error reported there.
            if self.unwritten.is_empty() {
                let (written, result) = write_some(&mut self.log, content.as_bytes());
                match result {
                    Ok(()) => {}
                    Err(error) if crate::storage_full::is_full(&error) => {
                        self.unwritten
                            .extend_from_slice(&content.as_bytes()[written..]);
                    }
                    Err(error) => self.failed = Some(error),
                }
            } else if self.unwritten.len() + content.len() > UNWRITTEN_MAX {
                self.failed = Some(io::Error::other(format!(
                    "more than {} MiB of output waited for space on a full disk",
                    UNWRITTEN_MAX >> 20
                )));
            } else {
                self.unwritten.extend_from_slice(content.as_bytes());
                let _ = self.write_unwritten();
            }
        }
        let offset = self.offset;
        self.offset += content.len() as u64;
        // Nobody listening is fine.
        let _ = self.live.send(Chunk {
            run_id: self.run_id,
            step_id: self.step_id,
            offset,
            content,
        });
    }

    /// Writes what the log could not take yet; a full disk is the error until it does.
    fn write_unwritten(&mut self) -> io::Result<()> {
        let (written, result) = write_some(&mut self.log, &self.unwritten);
        self.unwritten.drain(..written);
        if let Err(error) = &result
            && !crate::storage_full::is_full(error)
        {
            self.failed = Some(copy_error(error));
        }
        result
    }

    /// Flushes the log and puts the tail file beside it (a link to the log when the log is its
    /// own tail); returns (bytes, lines). On a full disk it fails with that error and may be
    /// called again, until it succeeds (the step's end waits it out,
    /// [`crate::storage_full`]); once it has, it returns the same again.
    pub fn finish(&mut self) -> io::Result<(u64, u64)> {
        if let Some(done) = self.finished {
            return Ok(done);
        }
        self.emit();
        if let Some(error) = &self.failed {
            return Err(copy_error(error));
        }
        if !self.unwritten.is_empty() {
            self.write_unwritten()?;
        }
        self.log.flush()?;
        let tail_path = PathBuf::from(loop_core::layout::tail_path_of(
            &self.log_path.to_string_lossy(),
        ));
        if self.lines <= TAIL_LINES as u64 && !self.cut {
            link_tail(&self.log, &self.log_path, &tail_path)?;
        } else {
            let mut tail = String::new();
            for line in &self.tail {
                tail.push_str(line);
                tail.push('\n');
            }
            write_tail(&self.log, &tail_path, tail.as_bytes())?;
        }
        self.finished = Some((self.offset, self.lines));
        Ok((self.offset, self.lines))
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
}

/// Writes `bytes` to `file`; how many it took, and the error that stopped it.
fn write_some(file: &mut File, bytes: &[u8]) -> (usize, io::Result<()>) {
    let mut written = 0;
    while written < bytes.len() {
        match file.write(&bytes[written..]) {
            Ok(0) => return (written, Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => written += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return (written, Err(error)),
        }
    }
    (written, Ok(()))
}

/// The same error again (an `io::Error` is not `Clone`).
fn copy_error(error: &io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(error.kind(), error.to_string()),
    }
}

/// Whether `path` names the same file as the open `log`.
fn is_log(log: &File, path: &Path) -> io::Result<Option<bool>> {
    use std::os::unix::fs::MetadataExt;
    let log = log.metadata()?;
    match std::fs::symlink_metadata(path) {
        Ok(other) => Ok(Some(other.dev() == log.dev() && other.ino() == log.ino())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Makes `tail_path` a second name of the log; a file system without links gets a copy.
fn link_tail(log: &File, log_path: &Path, tail_path: &Path) -> io::Result<()> {
    match is_log(log, tail_path)? {
        Some(true) => return Ok(()),
        // A tail of an earlier log of the same name, a file of its own.
        Some(false) => std::fs::remove_file(tail_path)?,
        None => {}
    }
    match std::fs::hard_link(log_path, tail_path) {
        Ok(()) => Ok(()),
        Err(_) => std::fs::copy(log_path, tail_path).map(drop),
    }
}

/// Writes the tail as a file of its own; never through a link to the log, which writing
/// would truncate.
fn write_tail(log: &File, tail_path: &Path, tail: &[u8]) -> io::Result<()> {
    if is_log(log, tail_path)? == Some(true) {
        std::fs::remove_file(tail_path)?;
    }
    std::fs::write(tail_path, tail)
}

#[cfg(test)]
mod tests {
    use loop_core::{RunId, StepId};
    use tokio::sync::broadcast;

    use super::{Chunk, StepOutput, TAIL_LINES};

    fn output(dir: &std::path::Path) -> (StepOutput, broadcast::Receiver<Chunk>) {
        let (live, receiver) = broadcast::channel(64);
        let log = dir.join("iter-01-impl.log");
        let run = RunId::from_uuid(uuid::Uuid::now_v7());
        let step = StepId::from_uuid(uuid::Uuid::now_v7());
        (
            StepOutput::create(run, step, &log, live).expect("create"),
            receiver,
        )
    }

    fn drain(receiver: &mut broadcast::Receiver<Chunk>) -> Vec<(u64, String)> {
        std::iter::from_fn(|| receiver.try_recv().ok())
            .map(|chunk| (chunk.offset, chunk.content))
            .collect()
    }

    #[test]
    fn held_lines_go_out_as_one_chunk_at_their_offset_in_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut output, mut live) = output(dir.path());
        output.line("first");
        assert_eq!(
            drain(&mut live),
            [(0, "first\n".to_owned())],
            "a line goes out at once"
        );
        output.hold();
        output.line("second");
        output.line("third");
        assert_eq!(drain(&mut live), [], "held");
        output.release();
        assert_eq!(drain(&mut live), [(6, "second\nthird\n".to_owned())]);
        let log = output.log_path().to_owned();
        let on_disk = std::fs::read_to_string(&log).expect("log");
        assert_eq!(
            on_disk, "first\nsecond\nthird\n",
            "released lines are in the file"
        );
        output.hold();
        output.line("fourth");
        assert_eq!(
            output.finish().expect("finish"),
            (26, 4),
            "finish writes held lines"
        );
        assert_eq!(drain(&mut live), [(19, "fourth\n".to_owned())]);
        assert_eq!(
            std::fs::read_to_string(&log).expect("log"),
            "first\nsecond\nthird\nfourth\n"
        );
    }

    #[test]
    fn the_tail_file_keeps_the_last_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut output, _live) = output(dir.path());
        output.hold();
        for n in 0..TAIL_LINES + 50 {
            output.line(&format!("line {n}"));
        }
        output.release();
        output.finish().expect("finish");
        let tail = std::fs::read_to_string(dir.path().join("iter-01-impl.tail.txt")).expect("tail");
        let expected: String = (50..TAIL_LINES + 50)
            .map(|n| format!("line {n}\n"))
            .collect();
        assert_eq!(tail, expected);
    }

    fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let (a, b) = (
            std::fs::metadata(a).expect("a"),
            std::fs::metadata(b).expect("b"),
        );
        (a.dev(), a.ino()) == (b.dev(), b.ino())
    }

    #[test]
    fn a_log_that_is_its_own_tail_is_linked_and_a_longer_one_is_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, tail) = (
            dir.path().join("iter-01-impl.log"),
            dir.path().join("iter-01-impl.tail.txt"),
        );
        // Short: the tail is the log, as one file under two names.
        let (mut step, _live) = output(dir.path());
        for n in 0..TAIL_LINES {
            step.line(&format!("line {n}"));
        }
        step.finish().expect("finish");
        let short: String = (0..TAIL_LINES).map(|n| format!("line {n}\n")).collect();
        assert_eq!(std::fs::read_to_string(&tail).expect("tail"), short);
        assert!(same_file(&log, &tail), "the tail is a link to the log");

        // The same name again with one line more: the log is rewritten, the linked tail is not
        // rewritten with it but replaced by the last lines alone.
        let (mut step, _live) = output(dir.path());
        for n in 0..=TAIL_LINES {
            step.line(&format!("line {n}"));
        }
        step.finish().expect("finish");
        let longer: String = (0..=TAIL_LINES).map(|n| format!("line {n}\n")).collect();
        assert_eq!(std::fs::read_to_string(&log).expect("log"), longer);
        let last: String = (1..=TAIL_LINES).map(|n| format!("line {n}\n")).collect();
        assert_eq!(std::fs::read_to_string(&tail).expect("tail"), last);
        assert!(!same_file(&log, &tail));

        // One line too long for the tail: the tail cuts it, so it is a file of its own.
        let (mut step, _live) = output(dir.path());
        let long = "x".repeat(super::TAIL_LINE_MAX + 1);
        step.line(&long);
        step.finish().expect("finish");
        assert_eq!(
            std::fs::read_to_string(&log).expect("log"),
            format!("{long}\n")
        );
        assert_eq!(
            std::fs::read_to_string(&tail).expect("tail"),
            format!("{}\n", &long[..super::TAIL_LINE_MAX])
        );
        assert!(!same_file(&log, &tail));

        // Short again after a tail of its own: linked again, holding the new log.
        let (mut step, _live) = output(dir.path());
        step.line("only");
        step.finish().expect("finish");
        assert_eq!(std::fs::read_to_string(&tail).expect("tail"), "only\n");
        assert!(same_file(&log, &tail));
    }
}
