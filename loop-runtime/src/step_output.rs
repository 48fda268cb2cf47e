//! A step's text output: the `.log` file, the last lines for `.tail.txt`, and the live channel.
//!
//! Text is appended a whole line at a time, so every live chunk starts and ends on a UTF-8
//! boundary and its offset is the byte offset of the chunk in the `.log` file: a reader that
//! has the file up to some offset can continue from the live channel without a gap.

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
    offset: u64,
    lines: u64,
    tail: VecDeque<String>,
    live: broadcast::Sender<Chunk>,
    failed: Option<io::Error>,
}

impl StepOutput {
    pub fn create(
        run_id: RunId,
        step_id: StepId,
        log_path: &Path,
        live: broadcast::Sender<Chunk>,
    ) -> io::Result<StepOutput> {
        Ok(StepOutput {
            run_id,
            step_id,
            log: File::create(log_path)?,
            log_path: log_path.to_owned(),
            offset: 0,
            lines: 0,
            tail: VecDeque::with_capacity(TAIL_LINES),
            live,
            failed: None,
        })
    }

    /// Appends one line of text (a newline is added).
    pub fn line(&mut self, text: &str) {
        let mut content = String::with_capacity(text.len() + 1);
        content.push_str(text);
        content.push('\n');
        if self.failed.is_none()
            && let Err(error) = self.log.write_all(content.as_bytes())
        {
            // Keep the step going (the live channel and tail still work); report at the end.
            self.failed = Some(error);
        }
        let offset = self.offset;
        self.offset += content.len() as u64;
        self.lines += 1;
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        let mut cut = text.len().min(TAIL_LINE_MAX);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        self.tail.push_back(text[..cut].to_owned());
        // Nobody listening is fine.
        let _ = self.live.send(Chunk {
            run_id: self.run_id,
            step_id: self.step_id,
            offset,
            content,
        });
    }

    /// Flushes the log and writes the tail file beside it; returns (bytes, lines).
    pub fn finish(mut self) -> io::Result<(u64, u64)> {
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        self.log.flush()?;
        let mut tail = String::new();
        for line in &self.tail {
            tail.push_str(line);
            tail.push('\n');
        }
        let tail_path = loop_core::layout::tail_path_of(&self.log_path.to_string_lossy());
        std::fs::write(tail_path, tail)?;
        Ok((self.offset, self.lines))
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
}
