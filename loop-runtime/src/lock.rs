//! The data dir's lock: one process drives the runs of a data dir at a time — a daemon, or a
//! `loopctl exec`. The lock file says who holds it (pid, and the address a daemon serves), so
//! the next one can name the holder or hand its work to it.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use thiserror::Error;

/// The lock file's name in the data dir.
pub const FILE: &str = "loopd.lock";

/// Who holds a data dir, as its lock file says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holder {
    pub pid: Option<u32>,
    /// The address a daemon holder serves (`http://127.0.0.1:7700`); `None` for `loopctl exec`.
    pub address: Option<String>,
    /// The file's text, for messages.
    pub text: String,
}

impl Holder {
    fn parse(text: &str) -> Holder {
        let text = text.trim().to_owned();
        let mut words = text.split_whitespace();
        let pid = match words.next() {
            Some("pid") => words.next().and_then(|pid| pid.parse().ok()),
            _ => None,
        };
        let address = match words.next() {
            Some("on") => words.next().map(str::to_owned),
            _ => None,
        };
        Holder { pid, address, text }
    }
}

/// Why the lock was not taken.
#[derive(Debug, Error)]
pub enum LockError {
    #[error("{} is in use by {}", dir.display(), if holder.text.is_empty() { "another process" } else { &holder.text })]
    Held { dir: PathBuf, holder: Holder },
    #[error("cannot open the lock file {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Held for the life of its holder; the kernel releases it when the process ends, however.
#[derive(Debug)]
pub struct DataDirLock {
    file: Flock<std::fs::File>,
}

impl DataDirLock {
    /// Takes the lock or says who holds it; `role` is what the holder is (`on <address>` for a
    /// daemon, `(loopctl exec)` for a one-off run).
    pub fn take(data_dir: &Path, role: &str) -> Result<DataDirLock, LockError> {
        let path = data_dir.join(FILE);
        let io_error = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_error)?;
        let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((mut file, _)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held {
                    dir: data_dir.to_owned(),
                    holder: Holder::parse(&text),
                });
            }
        };
        let mut lock = DataDirLock { file };
        lock.record(role).map_err(io_error)?;
        Ok(lock)
    }

    /// Says who holds the lock: this process, as `role`.
    pub fn record(&mut self, role: &str) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        writeln!(self.file, "pid {} {role}", std::process::id())?;
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_read_back() {
        let daemon = Holder::parse("pid 42 on http://127.0.0.1:7700\n");
        assert_eq!(daemon.pid, Some(42));
        assert_eq!(daemon.address.as_deref(), Some("http://127.0.0.1:7700"));
        let exec = Holder::parse("pid 7 (loopctl exec)");
        assert_eq!((exec.pid, exec.address), (Some(7), None));
        assert_eq!(Holder::parse(""), Holder::default());
    }

    #[test]
    fn a_second_taker_learns_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let _held = DataDirLock::take(dir.path(), "on http://127.0.0.1:1").unwrap();
        // flock locks belong to the open file description: a second open in this process
        // conflicts as another process's would.
        match DataDirLock::take(dir.path(), "(loopctl exec)") {
            Err(LockError::Held { holder, .. }) => {
                assert_eq!(holder.address.as_deref(), Some("http://127.0.0.1:1"));
                assert_eq!(holder.pid, Some(std::process::id()));
            }
            other => panic!("{other:?}"),
        }
    }
}
