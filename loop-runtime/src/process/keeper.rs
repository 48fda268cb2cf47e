//! The process every child started through the [`trampoline`](super::trampoline) runs under:
//! it stays, as the child's parent and a subreaper, until nothing the child started is left.
//!
//! A process group does not hold a child's descendants: one that calls `setsid` (an agent's
//! `setsid -f make watch`, a daemonizing tool) leaves it, and survived cancel, pause, a lost
//! claim and kill -9 of the daemon, committing later behind the log's back. The keeper holds
//! them instead:
//!
//! - it is a subreaper (`PR_SET_CHILD_SUBREAPER`), so an orphan anywhere below it is handed to
//!   it rather than to init, and every descendant stays in its tree ([`super::tree`]);
//! - it leads the child's process group (the runtime's `killpg` reaches both, as before), and
//!   passes a SIGTERM on to the descendants outside the group;
//! - when the child ends, it kills everything still below it, then exits as the child did
//!   (its code, or the same signal), so the runtime sees the child's own ending;
//! - its parent-death signal is SIGTERM, which it catches: when the program that started it
//!   dies, however, it kills everything below it at once and ends.
//!
//! The child is started by `fork` from this small, freshly executed process (cheap: nothing
//! to copy), with its own parent-death signal (SIGKILL) tied to the keeper.
//!
//! cgroup v2 would do the same with one write, but is not there on every machine (this one
//! has v1 only) nor delegated to every user; the subreaper needs nothing.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// How long the keeper keeps killing what is below it before it gives up (a process stuck in
/// the kernel cannot be killed any sooner).
const PATIENCE: Duration = Duration::from_secs(10);

/// The keeper's life: start `program` as `name` with `args`, and end as described above.
/// `parent` is the pid of the program that started it, checked once the parent-death signal is
/// armed (a parent that died before would never send it).
pub(super) fn serve(
    parent: Option<i32>,
    program: OsString,
    name: OsString,
    args: Vec<OsString>,
) -> ! {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGCHLD);
    // Blocked before anything can send them, so they wait for the signalfd rather than ending
    // this process with the tree still standing. (The child starts with no signal blocked:
    // the standard library clears the mask between fork and exec.)
    let signals = mask
        .thread_block()
        .and_then(|()| SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC));
    let Ok(signals) = signals else {
        std::process::exit(127);
    };
    if nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).is_err()
        || parent != Some(nix::unistd::getppid().as_raw())
    {
        std::process::exit(127);
    }
    // Without it (a kernel older than 3.4) orphans go to init, as they did before the keeper.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let me = nix::unistd::getpid();
    let mut command = std::process::Command::new(&program);
    command.arg0(name).args(args);
    super::ledger::die_with_parent(&mut command);
    let child = match command.spawn() {
        Ok(child) => Pid::from_raw(child.id() as i32),
        Err(error) => {
            eprintln!("cannot run {}: {error}", program.to_string_lossy());
            std::process::exit(127);
        }
    };
    // The child has the pipes now: the runtime sees them close when the child's side does.
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }

    let mut ended = None;
    while ended.is_none() {
        match signals.read_signal() {
            Ok(Some(info)) if info.ssi_signo == Signal::SIGTERM as u32 => {
                if nix::unistd::getppid().as_raw() != parent.unwrap_or(0) {
                    // The program died: nobody will send the rest. Everything goes now.
                    super::tree::kill(me, Signal::SIGKILL, false, PATIENCE);
                    reap(child, &mut ended);
                    finish(ended.unwrap_or(WaitStatus::Signaled(child, Signal::SIGTERM, false)));
                }
                // The runtime stopping the child: its group has the signal; the rest of the
                // tree gets it too, and SIGKILL follows from the runtime as for the group.
                let group = nix::unistd::getpgrp();
                for pid in super::tree::descendants(me) {
                    if nix::unistd::getpgid(Some(pid)) != Ok(group) {
                        let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
                    }
                }
            }
            Ok(_) | Err(Errno::EINTR) | Err(Errno::EAGAIN) => {}
            Err(_) => break,
        }
        reap(child, &mut ended);
    }
    // The child is gone: so goes whatever it started.
    super::tree::kill(me, Signal::SIGKILL, false, PATIENCE);
    let deadline = std::time::Instant::now() + PATIENCE;
    while reap(child, &mut ended) && std::time::Instant::now() < deadline {
        super::tree::kill(me, Signal::SIGKILL, false, Duration::ZERO);
        std::thread::sleep(Duration::from_millis(2));
    }
    finish(ended.unwrap_or(WaitStatus::Signaled(child, Signal::SIGKILL, false)))
}

/// Reaps every child that has ended (orphans handed to the keeper included), keeping the
/// child's own status in `ended`; whether any child is still to be waited for.
fn reap(child: Pid, ended: &mut Option<WaitStatus>) -> bool {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return true,
            Ok(status) => {
                if status.pid() == Some(child) {
                    *ended = Some(status);
                }
            }
            Err(Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
}

/// Ends as the child ended: with its exit code, or by its signal.
fn finish(status: WaitStatus) -> ! {
    match status {
        WaitStatus::Exited(_, code) => std::process::exit(code),
        WaitStatus::Signaled(_, signal, _) => {
            let mut only = SigSet::empty();
            only.add(signal);
            let _ = only.thread_unblock();
            let _ = nix::sys::signal::raise(signal);
            std::process::exit(128 + signal as i32);
        }
        _ => std::process::exit(127),
    }
}
