//! One process per program that kills its children's process groups when the program dies.
//!
//! A child started through the [`trampoline`](super::trampoline) dies with the program (its
//! parent-death signal), but what it started in its group — a shell's `sleep`, an agent's
//! tools — does not. The next daemon on the same data dir sweeps what its predecessor recorded;
//! a cluster node that dies is not started again, and its agents' tools would go on working
//! (and paying) for nobody. So the first child started through the trampoline also starts the
//! reaper: `/proc/self/exe` with [`MARKER`], in a group of its own, reading from a pipe whose
//! only writer is this program. The program writes `+<pgid>` when a child's group starts and
//! `-<pgid>` once the group is gone; when the pipe ends (the program ended, however), the reaper
//! kills every group still listed, and ends.
//!
//! Why one process and not a watcher per child: the trampoline used to fork twice per child to
//! leave a watcher behind, on the path of every step. Without those forks the runtime added
//! about 0.45 ms less to a step (`overhead` bench on tmpfs, 40 tasks, builds alternated: 2.45,
//! 2.48 and 2.48 ms a step with the watchers, 2.14, 2.01 and 1.89 with the reaper). A line to a
//! pipe costs microseconds.
//!
//! Each group is led by the child's [`keeper`](super::keeper), which ends the child's whole tree
//! itself when the program dies; the reaper is for a keeper that was killed too. It kills the
//! tree below each group's leader (descendants that left the group included) before the group.
//!
//! A reaper that someone else killed is replaced at once: a thread of the program waits on the
//! reaper's stdout, which the reaper never writes, and its end means the reaper is gone; the
//! new one is told every group listed. What it does not cover: the moment between a child's
//! start and its `+` line, left to the next daemon's sweep.

use std::collections::BTreeSet;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The first argument that makes a program that calls [`super::trampoline::serve`] a reaper.
pub const MARKER: &str = "--loop-runtime-reaper";

/// This program's side: its reaper, once started, and the groups it was told of.
struct Keeper {
    reaper: Option<(Child, ChildStdin)>,
    /// Every group told and not yet gone: what a new reaper is told should the first one die.
    groups: BTreeSet<i32>,
}

static KEEPER: Mutex<Keeper> = Mutex::new(Keeper {
    reaper: None,
    groups: BTreeSet::new(),
});

/// A group the reaper kills should this program die; drop it once the group is gone.
pub(crate) struct Reaped(i32);

impl Drop for Reaped {
    fn drop(&mut self) {
        tell(false, self.0);
    }
}

/// Tells the reaper (started now if there is none yet) of `group`.
pub(crate) fn reap_with_program(group: Pid) -> Reaped {
    tell(true, group.as_raw());
    Reaped(group.as_raw())
}

fn tell(started: bool, group: i32) {
    let mut keeper = KEEPER.lock().unwrap_or_else(|e| e.into_inner());
    let line = if started {
        keeper.groups.insert(group);
        format!("+{group}\n")
    } else {
        keeper.groups.remove(&group);
        format!("-{group}\n")
    };
    let written = keeper
        .reaper
        .as_mut()
        .is_some_and(|(_, pipe)| pipe.write_all(line.as_bytes()).is_ok());
    if !written && !keeper.groups.is_empty() {
        // No reaper yet, or it died (then it is waited for, not left a zombie).
        if let Some((mut old, _)) = keeper.reaper.take() {
            let _ = old.try_wait();
        }
        keeper.reaper = start(&keeper.groups);
    }
}

/// Starts a reaper and tells it of `groups`; `None` when that fails (nothing is then killed
/// with the program but what the parent-death signal reaches).
fn start(groups: &BTreeSet<i32>) -> Option<(Child, ChildStdin)> {
    // Named as the program was (`loopd --loop-runtime-reaper` in `ps`), not `/proc/self/exe`.
    let name = std::env::args_os()
        .next()
        .unwrap_or_else(|| "/proc/self/exe".into());
    let mut child = Command::new("/proc/self/exe")
        .arg0(name)
        .arg(MARKER)
        // It needs no variable, and the program's (a token, a store's password) would be
        // readable in its /proc/<pid>/environ by every process of the user.
        .env_clear()
        .stdin(Stdio::piped())
        // Never written: its end tells the program the reaper is gone.
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Its own group: the program's Ctrl-C, and the kills of a child's group, miss it.
        .process_group(0)
        .spawn()
        .ok()?;
    let mut pipe = child.stdin.take()?;
    let mut gone = child.stdout.take()?;
    let listed: String = groups.iter().map(|group| format!("+{group}\n")).collect();
    pipe.write_all(listed.as_bytes()).ok()?;
    let pid = child.id();
    let watch = std::thread::Builder::new()
        .name("reaper-watch".to_owned())
        .spawn(move || {
            let _ = gone.read(&mut [0u8; 1]);
            replace(pid);
        });
    if watch.is_err() {
        // Replaced at the program's next line instead.
        tracing::debug!("cannot watch the reaper");
    }
    Some((child, pipe))
}

/// The reaper `pid` ended: if it is still this program's, it is waited for and, when groups
/// are listed, a new one is started and told of them.
fn replace(pid: u32) {
    let mut keeper = KEEPER.lock().unwrap_or_else(|e| e.into_inner());
    if keeper
        .reaper
        .as_ref()
        .is_none_or(|(child, _)| child.id() != pid)
    {
        return;
    }
    if let Some((mut old, _)) = keeper.reaper.take() {
        let _ = old.wait();
    }
    if !keeper.groups.is_empty() {
        keeper.reaper = start(&keeper.groups);
    }
}

/// The reaper's life: keep the list its program writes, and when the pipe ends kill every
/// group still on it.
pub(crate) fn serve() -> ! {
    let mut groups = BTreeSet::new();
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (sign, number) = line.split_at_checked(1).unwrap_or_default();
        // Never 0 or 1: killpg would reach this process's own group, or init's.
        let Some(group) = number.parse::<i32>().ok().filter(|group| *group > 1) else {
            continue;
        };
        match sign {
            "+" => groups.insert(group),
            "-" => groups.remove(&group),
            _ => false,
        };
    }
    for group in groups {
        let group = Pid::from_raw(group);
        // What left the group is still below its leader, the child's keeper.
        if super::tree::leads_its_group(group) {
            super::tree::kill(group, Signal::SIGKILL, true, Duration::from_secs(5));
        }
        let _ = killpg(group, Signal::SIGKILL);
    }
    std::process::exit(0);
}
