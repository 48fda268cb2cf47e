//! A step's raw agent stream (`<name>.jsonl`): the agent's stdout bytes as they came.
//!
//! The file is made only when there is something to put in it, and not at all when the step's
//! text log already holds the same bytes: up to [`HOLD`] bytes are held in memory, and at the
//! step's end they become a hard link to the `.log` when equal to it (an agent whose stdout is
//! plain lines and who printed nothing on stderr, as `agent=command` scripts do), else a file.
//! A stream that outgrows the hold goes to its file from then on. The hold is small because it
//! is memory per running step (20 runs hold at most 320 KiB), and the outputs it saves a file
//! for are short ones. On the benchmark machine's ext4 a new inode was the largest cost of a
//! step after its two commits; an empty or duplicate raw file was one of them per agent step.
//!
//! Every call of a step appends to the same stream; the pipe readers of a call write into it
//! from their own task, so it is shared.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Bytes held in memory before the stream gets its file.
pub const HOLD: usize = 16 * 1024;

/// One step's raw stream, shared by the readers of its calls.
#[derive(Clone, Debug)]
pub struct RawStream {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    held: Vec<u8>,
    /// Open once the stream outgrew the hold.
    file: Option<File>,
    failed: Option<io::Error>,
}

impl RawStream {
    pub fn new(path: PathBuf) -> RawStream {
        RawStream {
            inner: Arc::new(Mutex::new(Inner {
                path,
                held: Vec::new(),
                file: None,
                failed: None,
            })),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `bytes`; false once writing has failed (the caller stops writing, the step
    /// goes on).
    pub fn write(&self, bytes: &[u8]) -> bool {
        let mut inner = self.inner();
        if inner.failed.is_some() {
            return false;
        }
        if inner.file.is_none() && inner.held.len() + bytes.len() <= HOLD {
            inner.held.extend_from_slice(bytes);
            return true;
        }
        let inner = &mut *inner;
        let written = match inner.file.as_mut() {
            Some(file) => file.write_all(bytes),
            None => open_append(&inner.path).and_then(|mut file| {
                file.write_all(&inner.held)?;
                file.write_all(bytes)?;
                inner.file = Some(file);
                Ok(())
            }),
        };
        inner.held = Vec::new();
        match written {
            Ok(()) => true,
            Err(error) => {
                inner.failed = Some(error);
                false
            }
        }
    }

    /// Ends the stream once the step's text log `log` (`log_bytes` long) is complete: what is
    /// held becomes a link to the log when it is the same bytes, else the file. Whether the
    /// file exists now.
    pub fn finish(&self, log: &Path, log_bytes: u64) -> io::Result<bool> {
        let mut inner = self.inner();
        if inner.file.is_some() || inner.held.is_empty() {
            inner.file = None;
            return Ok(inner.path.is_file());
        }
        let held = std::mem::take(&mut inner.held);
        let ended = end(&inner.path, &held, log, log_bytes);
        if ended.is_err() {
            // Kept for the next try (a full disk is waited out, `crate::storage_full`).
            inner.held = held;
        }
        ended
    }
}

/// What is held, `held`, becomes the stream's file at `path`: a link to `log` when the same.
fn end(path: &Path, held: &[u8], log: &Path, log_bytes: u64) -> io::Result<bool> {
    let fresh = match std::fs::symlink_metadata(path) {
        // Already the log's second name (a log rewritten in place): never append to it.
        Ok(raw) if same_file(&raw, &std::fs::metadata(log)?) => {
            std::fs::remove_file(path)?;
            true
        }
        Ok(_) => false,
        Err(error) if error.kind() == io::ErrorKind::NotFound => true,
        Err(error) => return Err(error),
    };
    // Only a fresh name is linked: a stream of the same name from before is appended to.
    if fresh
        && held.len() as u64 == log_bytes
        && std::fs::read(log).is_ok_and(|text| text == held)
        && std::fs::hard_link(log, path).is_ok()
    {
        return Ok(true);
    }
    open_append(path)?.write_all(held)?;
    Ok(true)
}

fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

fn open_append(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::{HOLD, RawStream};

    fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let (a, b) = (
            std::fs::metadata(a).expect("a"),
            std::fs::metadata(b).expect("b"),
        );
        (a.dev(), a.ino()) == (b.dev(), b.ino())
    }

    #[test]
    fn nothing_printed_makes_no_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, raw) = (dir.path().join("a.log"), dir.path().join("a.jsonl"));
        std::fs::write(&log, "").expect("log");
        let stream = RawStream::new(raw.clone());
        assert!(!stream.finish(&log, 0).expect("finish"));
        assert!(!raw.exists());
    }

    #[test]
    fn a_stream_equal_to_the_log_is_a_link_to_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, raw) = (dir.path().join("a.log"), dir.path().join("a.jsonl"));
        std::fs::write(&log, "DONE: task 1\nsecond\n").expect("log");
        let stream = RawStream::new(raw.clone());
        assert!(stream.write(b"DONE: task 1\n"));
        assert!(stream.write(b"second\n"));
        assert!(stream.finish(&log, 20).expect("finish"));
        assert_eq!(
            std::fs::read_to_string(&raw).expect("raw"),
            "DONE: task 1\nsecond\n"
        );
        assert!(same_file(&log, &raw));
    }

    #[test]
    fn a_stream_unlike_the_log_is_a_file_of_its_own() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, raw) = (dir.path().join("a.log"), dir.path().join("a.jsonl"));
        // Same length, other bytes (what a stderr line in the log would do).
        std::fs::write(&log, "{\"b\":1}\n").expect("log");
        let stream = RawStream::new(raw.clone());
        assert!(stream.write(b"{\"a\":1}\n"));
        assert!(stream.finish(&log, 8).expect("finish"));
        assert_eq!(std::fs::read_to_string(&raw).expect("raw"), "{\"a\":1}\n");
        assert!(!same_file(&log, &raw));
    }

    #[test]
    fn a_stream_past_the_hold_goes_to_its_file_whole_and_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, raw) = (dir.path().join("a.log"), dir.path().join("a.jsonl"));
        let piece: Vec<u8> = (0..1000u32).map(|n| b'a' + (n % 26) as u8).collect();
        let mut all = Vec::new();
        let stream = RawStream::new(raw.clone());
        while all.len() <= HOLD * 2 {
            assert!(stream.clone().write(&piece));
            all.extend_from_slice(&piece);
            if all.len() > HOLD {
                assert!(raw.is_file(), "the file exists once the hold is outgrown");
            }
        }
        std::fs::write(&log, &all).expect("log");
        assert!(stream.finish(&log, all.len() as u64).expect("finish"));
        assert_eq!(std::fs::read(&raw).expect("raw"), all);
        assert!(!same_file(&log, &raw), "too large to have been held");
    }

    #[test]
    fn a_stream_of_a_name_used_before_is_appended_to_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, raw) = (dir.path().join("a.log"), dir.path().join("a.jsonl"));
        std::fs::write(&raw, "earlier\n").expect("raw");
        std::fs::write(&log, "later\n").expect("log");
        let stream = RawStream::new(raw.clone());
        assert!(stream.write(b"later\n"));
        assert!(stream.finish(&log, 6).expect("finish"));
        assert_eq!(
            std::fs::read_to_string(&raw).expect("raw"),
            "earlier\nlater\n"
        );
    }
}
