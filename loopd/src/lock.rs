//! The data dir's lock: one daemon per data dir. The file holds the holder's pid and address,
//! so a second daemon can say who is there.

use std::fs::OpenOptions;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

/// Held for the life of the daemon; the kernel releases it when the process ends, however.
#[derive(Debug)]
pub struct DataDirLock {
    file: Flock<std::fs::File>,
}

impl DataDirLock {
    /// Takes the lock or says who holds it; `address` is what this daemon will serve.
    pub fn take(data_dir: &Path, address: &str) -> anyhow::Result<DataDirLock> {
        let path = data_dir.join("loopd.lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)?;
        let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((mut file, _)) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                anyhow::bail!(
                    "another loopd already uses {} ({}); stop it or pass another --data-dir",
                    data_dir.display(),
                    if holder.is_empty() {
                        "holder unknown".to_owned()
                    } else {
                        holder.to_owned()
                    }
                );
            }
        };
        let mut lock = DataDirLock { file };
        lock.record(address)?;
        Ok(lock)
    }

    /// Says who holds the lock: this process, serving `address`.
    pub fn record(&mut self, address: &str) -> anyhow::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        writeln!(self.file, "pid {} on {address}", std::process::id())?;
        self.file.flush()?;
        Ok(())
    }
}
