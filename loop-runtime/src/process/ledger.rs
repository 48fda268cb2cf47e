//! The ledger of live child process groups, so that none outlives a dead daemon unrecorded.
//!
//! Every supervised child's process group is written to `<data dir>/processes/<pgid>` (with the
//! leader's start time, so a reused pid is never mistaken for it) before the child gets its
//! input, and the file is removed once the group is gone. A daemon killed with SIGKILL cannot
//! clean up; its children die with it (parent-death signal), but what they had started in their
//! group — a test run, a build — would go on. Whoever takes the data dir next calls [`sweep`],
//! which kills every group the ledger still names, before anything runs again.
//!
//! Why a file per group in the data dir and not an event in the log: a process group is a fact
//! of one boot of one machine, meaningless to a replay or to another node, and the ledger must
//! survive only the death of this process, which page-cache writes do (a machine crash takes the
//! processes with it). So the entry costs no fsync on a step's path.
//!
//! The ledger a child is written to is the one of the runtime whose task starts it
//! ([`scope`]); a child started outside any runtime's task is not recorded.
//!
//! A crossed-out entry's file is not deleted but moved to `<data dir>/processes.spare/`, and
//! the next entry is written there and moved into the ledger: a child per step made a new
//! inode and a deletion per step, and on ext4 without a journal every new inode pays for the
//! ones deleted in the last seconds (a new file cost up to 1.4 ms on the benchmark machine).
//! The ledger directory itself holds only live groups, as before. A spare is written over, not
//! truncated ([`crate::artifacts::overwrite`]): a truncation freed its block, a discard on a
//! disk mounted `discard`.

use std::ffi::OsStr;
use std::future::Future;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The directory of a data dir's ledger.
pub const DIR: &str = "processes";
/// Files of crossed-out entries, kept for reuse; never read.
const SPARE_DIR: &str = "processes.spare";

tokio::task_local! {
    static LEDGER: Arc<Ledger>;
}

/// One data dir's ledger.
#[derive(Debug)]
pub struct Ledger {
    dir: PathBuf,
    spare_dir: PathBuf,
    /// Spare files ready for reuse, and the number of spare names handed out so far.
    spares: Mutex<(Vec<PathBuf>, u64)>,
}

impl Ledger {
    pub fn new(data_dir: &Path) -> Ledger {
        Ledger {
            dir: data_dir.join(DIR),
            spare_dir: data_dir.join(SPARE_DIR),
            spares: Mutex::default(),
        }
    }

    fn spares(&self) -> std::sync::MutexGuard<'_, (Vec<PathBuf>, u64)> {
        self.spares.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `line` as the entry `path`: into a spare file moved into place when there is one
    /// (the entry appears whole, and no inode is made), else into a new file.
    fn write(&self, path: &Path, line: &str) -> std::io::Result<()> {
        let spare = self.spares().0.pop();
        if let Some(spare) = spare {
            match crate::artifacts::overwrite(&spare, line.as_bytes())
                .and_then(|()| std::fs::rename(&spare, path))
            {
                Ok(()) => return Ok(()),
                Err(_) => {
                    let _ = std::fs::remove_file(&spare);
                }
            }
        }
        std::fs::write(path, line)
    }

    /// Crosses out the entry `path`: moves its file to the spares, or removes it.
    fn cross_out(&self, path: &Path) {
        let spare = {
            let mut spares = self.spares();
            spares.1 += 1;
            self.spare_dir.join(spares.1.to_string())
        };
        let moved = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.spare_dir)
            .and_then(|()| std::fs::rename(path, &spare));
        match moved {
            Ok(()) => self.spares().0.push(spare),
            Err(_) => {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Runs `work` with children it starts recorded in `ledger`.
pub async fn scope<F: Future>(ledger: Arc<Ledger>, work: F) -> F::Output {
    LEDGER.scope(ledger, work).await
}

/// A group's line in the ledger, crossed out when dropped.
#[derive(Debug)]
pub(crate) struct Entry {
    ledger: Arc<Ledger>,
    path: PathBuf,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.ledger.cross_out(&self.path);
    }
}

/// Records `group` (led by a child running `program`) in the current task's ledger.
pub(crate) fn enter(group: Pid, program: &OsStr) -> Option<Entry> {
    let ledger = LEDGER.try_with(Arc::clone).ok()?;
    let start = start_time(group)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&ledger.dir)
        .ok()?;
    let path = ledger.dir.join(group.as_raw().to_string());
    let line = format!("{start} {}\n", program.to_string_lossy());
    match ledger.write(&path, &line) {
        Ok(()) => Some(Entry { ledger, path }),
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "cannot record a child process group");
            None
        }
    }
}

/// Kills every process group the data dir's ledger names and clears it; returns how many groups
/// were found alive. Call it holding the data dir, before any child is started.
pub fn sweep(data_dir: &Path) -> usize {
    // A dead runtime's spares are not worth keeping: they would only be this runtime's too.
    let _ = std::fs::remove_dir_all(data_dir.join(SPARE_DIR));
    let dir = data_dir.join(DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let group = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.parse::<i32>().ok())
            .filter(|pid| *pid > 1)
            .map(Pid::from_raw);
        let recorded = std::fs::read_to_string(&path).ok().and_then(|text| {
            text.split_whitespace()
                .next()
                .and_then(|start| start.parse::<u64>().ok())
        });
        if let (Some(group), Some(recorded)) = (group, recorded)
            && still_ours(group, recorded)
            && {
                // A keeper still alive holds the descendants that left the group.
                if start_time(group) == Some(recorded) {
                    super::tree::kill(group, Signal::SIGKILL, true, Duration::from_secs(5));
                }
                killpg(group, Signal::SIGKILL).is_ok()
            }
        {
            tracing::debug!(
                pgid = group.as_raw(),
                "killed a process group a dead loop left running"
            );
            killed += 1;
        }
        let _ = std::fs::remove_file(&path);
    }
    killed
}

/// Whether the group recorded with this leader start time may still exist. Linux never hands a
/// pid out again while a process group of that id has a member, so: the leader alive with the
/// recorded start time is ours; the leader gone may leave members of ours; a different process
/// under that pid means our group is gone entirely.
fn still_ours(group: Pid, recorded: u64) -> bool {
    match start_time(group) {
        Some(start) => start == recorded,
        None => true,
    }
}

/// The start time of a process in clock ticks since boot (`/proc/<pid>/stat`, field 22).
fn start_time(pid: Pid) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw())).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Makes the child die when the thread that started it does (the daemon's, on kill -9 too; the
/// keeper's, for a child started under one).
#[allow(unsafe_code)]
pub(crate) fn die_with_parent(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the child between fork and exec, where only async-signal-safe
    // functions may be called; prctl(2) and getppid(2) are, and it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // The parent may have died before the signal was armed: then nobody would send it.
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::other("the parent is gone"));
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_start_time_of_a_live_process() {
        let me = nix::unistd::getpid();
        assert!(start_time(me).is_some());
        assert!(still_ours(me, start_time(me).unwrap()));
        assert!(!still_ours(me, start_time(me).unwrap() + 1));
    }

    #[tokio::test]
    async fn a_crossed_out_entry_leaves_the_ledger_empty_and_its_file_is_reused() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let ledger = Arc::new(Ledger::new(dir.path()));
        let me = nix::unistd::getpid();
        let entries = dir.path().join(DIR);
        let path = entries.join(me.as_raw().to_string());
        let empty = || std::fs::read_dir(&entries).unwrap().next().is_none();
        scope(ledger, async {
            let entry = enter(me, OsStr::new("agent")).expect("recorded");
            let start = start_time(me).unwrap();
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                format!("{start} agent\n")
            );
            let inode = std::fs::metadata(&path).unwrap().ino();
            drop(entry);
            assert!(empty(), "crossed out");
            let entry = enter(me, OsStr::new("verify")).expect("recorded");
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                format!("{start} verify\n")
            );
            assert_eq!(
                std::fs::metadata(&path).unwrap().ino(),
                inode,
                "the file is reused"
            );
            drop(entry);
            assert!(empty(), "crossed out again");
        })
        .await;
    }

    #[test]
    fn a_sweep_of_an_empty_or_missing_ledger_kills_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(sweep(dir.path()), 0);
        std::fs::create_dir_all(dir.path().join(DIR)).unwrap();
        std::fs::write(dir.path().join(DIR).join("junk"), "x").unwrap();
        assert_eq!(sweep(dir.path()), 0);
        assert!(!dir.path().join(DIR).join("junk").exists());
    }
}
