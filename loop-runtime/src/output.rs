//! A step's text output from a byte offset on: what the `.log` file has, then live chunks as
//! they are written, until the step finishes. Resuming at the offset of the last chunk seen
//! gives every later byte exactly once; chunks are whole lines, so always whole UTF-8.

use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use loop_core::event::Event;
use loop_core::{RunId, StepId};
use tokio::sync::broadcast::{self, error::RecvError};

use crate::error::RuntimeError;
use crate::step_output::Chunk;
use crate::stream::EventStream;

/// Bytes read from the log file per chunk.
const READ: usize = 64 * 1024;

/// A step's output from an offset, live while the step runs.
#[derive(Debug)]
pub struct OutputStream {
    run_id: RunId,
    step_id: StepId,
    path: PathBuf,
    /// The `.log`, open once it exists: a stream that keeps up reads every chunk from it.
    file: Option<std::fs::File>,
    offset: u64,
    live: broadcast::Receiver<Chunk>,
    events: EventStream,
    finished: bool,
}

impl OutputStream {
    pub(crate) fn new(
        run_id: RunId,
        step_id: StepId,
        path: PathBuf,
        offset: u64,
        live: broadcast::Receiver<Chunk>,
        events: EventStream,
        finished: bool,
    ) -> OutputStream {
        OutputStream {
            run_id,
            step_id,
            path,
            file: None,
            offset,
            live,
            events,
            finished,
        }
    }

    /// The next chunk; `None` once the step has finished and everything was read.
    pub async fn next(&mut self) -> Option<Result<Chunk, RuntimeError>> {
        loop {
            match self.read_file() {
                Ok(Some(chunk)) => return Some(Ok(chunk)),
                Ok(None) if self.finished => return None,
                Ok(None) => {}
                Err(error) => return Some(Err(error)),
            }
            tokio::select! {
                chunk = self.live.recv() => match chunk {
                    Ok(chunk) if chunk.step_id != self.step_id => {}
                    Ok(chunk) if chunk.offset == self.offset => {
                        self.offset += chunk.content.len() as u64;
                        return Some(Ok(chunk));
                    }
                    // Older than what we have, or a gap (we lagged): the file has it.
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => self.finished = true,
                },
                record = self.events.next() => match record {
                    Some(Ok(record)) => {
                        if matches!(&record.event, Event::StepFinished(s) if s.step_id == self.step_id)
                            || record.event.is_terminal()
                        {
                            self.finished = true;
                        }
                    }
                    Some(Err(error)) => return Some(Err(error)),
                    None => self.finished = true,
                },
            }
        }
    }

    /// The whole lines of the file after the offset (everything once the step is finished).
    fn read_file(&mut self) -> Result<Option<Chunk>, RuntimeError> {
        let io = |source| RuntimeError::Io {
            what: self.path.display().to_string(),
            source,
        };
        if self.file.is_none() {
            match std::fs::File::open(&self.path) {
                Ok(file) => self.file = Some(file),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(error) => return Err(io(error)),
            }
        }
        let Some(file) = &self.file else {
            return Ok(None);
        };
        let mut bytes = vec![0; READ];
        let mut read = 0;
        while read < READ {
            match file.read_at(&mut bytes[read..], self.offset + read as u64) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(io(error)),
            }
        }
        bytes.truncate(read);
        // A line being written may be half there: stop at the last newline. A line longer than
        // a whole read goes out in pieces, cut between characters.
        let end = match bytes.iter().rposition(|b| *b == b'\n') {
            Some(newline) => newline + 1,
            None if self.finished => bytes.len(),
            None if bytes.len() == READ => utf8_prefix(&bytes),
            None => 0,
        };
        if end == 0 {
            return Ok(None);
        }
        bytes.truncate(end);
        // Checked in place and kept when valid, the usual case; the lossy decoder is slower
        // and copies.
        let content = String::from_utf8(bytes)
            .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned());
        let chunk = Chunk {
            run_id: self.run_id,
            step_id: self.step_id,
            offset: self.offset,
            content,
        };
        self.offset += end as u64;
        Ok(Some(chunk))
    }
}

/// The length of `bytes` without a UTF-8 character cut short at its end.
fn utf8_prefix(bytes: &[u8]) -> usize {
    match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(error) if error.error_len().is_none() => error.valid_up_to(),
        // Not UTF-8 at all: pieces are as good as any.
        Err(_) => bytes.len(),
    }
}
