//! A process and everything below it, as the kernel's parent links say.
//!
//! A process group is not the whole of what a child started: a descendant that calls `setsid`
//! (or `setpgid`) leaves it, and `killpg` no longer reaches it. The parent links do, as long as
//! they are not cut: the [`keeper`](super::keeper) every child is started under is a
//! subreaper, so an orphan below it is handed to it, not to init, and stays in its tree.

use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// The live processes below `root` (zombies left out: they are dead, only not yet reaped).
/// Read from each task's `children` file; a kernel without those files gets a scan of every
/// process's parent.
pub(crate) fn descendants(root: Pid) -> Vec<Pid> {
    let mut found = Vec::new();
    let mut next = vec![root];
    let by_files = std::path::Path::new(&format!("/proc/{root}/task/{root}/children")).exists();
    let parents = (!by_files).then(all_parents);
    while let Some(pid) = next.pop() {
        let children = match &parents {
            None => children(pid),
            Some(parents) => parents
                .iter()
                .filter(|(_, parent)| *parent == pid)
                .map(|(child, _)| *child)
                .collect(),
        };
        for child in children {
            // A pid seen twice (the files are read while processes come and go) is kept once.
            if child != root && !found.contains(&child) {
                found.push(child);
                next.push(child);
            }
        }
    }
    found.retain(|pid| !is_zombie(*pid));
    found
}

/// Sends `signal` to every process below `root`, then to `root` itself when `with_root`, again
/// until none is left below it (a process may fork while it is being killed) or `patience` is
/// over. The root goes last: while it lives, it holds the tree together.
pub(crate) fn kill(root: Pid, signal: Signal, with_root: bool, patience: Duration) {
    let deadline = Instant::now() + patience;
    loop {
        let below = descendants(root);
        for pid in &below {
            let _ = signal::kill(*pid, signal);
        }
        if below.is_empty() || signal != Signal::SIGKILL || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if with_root {
        let _ = signal::kill(root, signal);
    }
}

/// Whether `pid` leads the process group `pid`: still the child it was started as, not a pid
/// handed out again to someone else (who would be in a group of their own making).
pub(crate) fn leads_its_group(pid: Pid) -> bool {
    nix::unistd::getpgid(Some(pid)) == Ok(pid)
}

fn children(pid: Pid) -> Vec<Pid> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    // A child belongs to the thread that started it: every thread's list counts.
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .map(Pid::from_raw)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `(pid, parent)` of every process.
fn all_parents() -> Vec<(Pid, Pid)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let (_, parent) = stat(Pid::from_raw(pid))?;
            Some((Pid::from_raw(pid), parent))
        })
        .collect()
}

/// A process's state letter and parent, from `/proc/<pid>/stat`.
fn stat(pid: Pid) -> Option<(char, Pid)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((state, Pid::from_raw(parent)))
}

fn is_zombie(pid: Pid) -> bool {
    // Gone altogether counts as dead too.
    stat(pid).is_none_or(|(state, _)| matches!(state, 'Z' | 'X'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn alive(pid: Pid) -> bool {
        !is_zombie(pid)
    }

    #[test]
    fn a_descendant_that_left_the_group_is_found_and_killed() {
        // sh -> (setsid sh -> sleep): the last two in a session of their own.
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("escaped");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "setsid sh -c 'echo $$ > {}; sleep 30' & sleep 30",
                pid_file.display()
            ))
            .spawn()
            .unwrap();
        let root = Pid::from_raw(child.id() as i32);
        let deadline = Instant::now() + Duration::from_secs(10);
        let escaped = loop {
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|text| text.trim().parse::<i32>().ok())
            {
                break Pid::from_raw(pid);
            }
            assert!(Instant::now() < deadline, "the escaped shell never started");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_ne!(
            nix::unistd::getpgid(Some(escaped)).unwrap(),
            nix::unistd::getpgid(Some(root)).unwrap(),
            "it left the group"
        );
        let below = descendants(root);
        assert!(below.contains(&escaped), "{below:?} lacks {escaped}");
        assert!(below.len() >= 3, "both sleeps and the shell: {below:?}");

        kill(root, Signal::SIGKILL, true, Duration::from_secs(5));
        child.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while below.iter().any(|pid| alive(*pid)) {
            assert!(Instant::now() < deadline, "{below:?} outlived the kill");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
