//! Starting a supervised child without copying the daemon.
//!
//! A child must die with the process that started it, even on kill -9: a parent-death signal,
//! armed between fork and exec. Armed in a `pre_exec` hook, it forces the standard library to
//! `fork` the whole daemon for every child; on a daemon holding 1,000 runs (140 MiB, 500
//! threads), copying its page tables, tearing them down again at exec and the copy-on-write
//! faults after were a fifth of the machine's samples in `loopd_load scale --runs 1000`, and the
//! cost per step grew with the number of runs.
//!
//! A program that calls [`serve`] first thing in `main` (loopd and loopctl do) lets the runtime
//! start children through itself instead: `posix_spawn` of `/proc/self/exe` with [`MARKER`] as
//! its first argument, which shares the address space until exec and copies nothing. That fresh,
//! small process arms the signal, makes sure its parent is still the one that started it, and
//! execs the child, which keeps the signal. A program that does not call [`serve`] (a library
//! user's, the runtime's own tests) gets the fork and the `pre_exec` hook as before.
//!
//! The signal reaches the child itself, not what it started: a shell's `sleep`, an agent's
//! tools. Those were left to the next daemon on the same data dir, which kills the groups its
//! predecessor recorded; but a cluster node that dies is not started again, and its agents'
//! tools would go on working (and paying) for nobody. So the trampoline also leaves a watcher
//! in the child's process group: a process of its own (not the child's, whose `wait` must not
//! see it) that holds a pidfd of the daemon and one of the child. When the daemon goes first it
//! kills the whole group; when the child ends with the daemon alive it just ends.
//!
//! The program is looked up in the parent, on the child's `PATH`, so a missing or
//! non-executable agent is the same `spawn` error it always was, not an exit status.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::Signal;
use nix::unistd::AccessFlags;

/// The first argument that makes a program that calls [`serve`] a trampoline.
pub const MARKER: &str = "--loop-runtime-start-child";

/// Whether this process answers to [`MARKER`].
static SERVED: AtomicBool = AtomicBool::new(false);

/// Call first thing in `main`. Started as a trampoline, this arms the parent-death signal and
/// becomes the child (it never returns); otherwise it notes that children may be started
/// through this program, and returns.
pub fn serve() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(OsStr::new(MARKER)) {
        SERVED.store(true, Ordering::Relaxed);
        return;
    }
    let parent = args
        .next()
        .and_then(|pid| pid.to_str()?.parse::<i32>().ok());
    let (Some(program), Some(name)) = (args.next(), args.next()) else {
        eprintln!("{MARKER}: no program to run");
        std::process::exit(127);
    };
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err()
        || parent != Some(nix::unistd::getppid().as_raw())
    {
        // The parent died before the signal was armed: nobody would send it.
        std::process::exit(127);
    }
    if let Some(daemon) = parent {
        leave_a_watcher(daemon);
    }
    let error = std::process::Command::new(&program)
        .arg0(name)
        .args(args)
        .exec();
    eprintln!("cannot run {}: {error}", program.to_string_lossy());
    std::process::exit(127);
}

/// Leaves a process in this one's group that kills the group if `daemon` ends while this
/// process (the child, once it execs) runs. Without pidfds (Linux before 5.3) there is none:
/// the next daemon's sweep is then the only remedy, as before.
#[allow(unsafe_code)]
fn leave_a_watcher(daemon: i32) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let pidfd = |pid: i32| {
        // SAFETY: pidfd_open(2) takes a pid and flags, and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        // SAFETY: a descriptor the call just opened, owned by nobody else.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
    };
    let me = std::process::id() as i32;
    let (Some(daemon), Some(child)) = (pidfd(daemon), pidfd(me)) else {
        return;
    };
    // SAFETY: this process has one thread (`serve` runs first thing in `main`), so the copy
    // fork(2) makes is whole. Both forked processes call only async-signal-safe functions.
    unsafe {
        match libc::fork() {
            0 => {
                // The first copy forks the watcher and ends at once, so the watcher belongs
                // to nobody this process's child could wait for.
                if libc::fork() == 0 {
                    watch(daemon.as_raw_fd(), child.as_raw_fd());
                }
                libc::_exit(0);
            }
            first if first > 0 => {
                let mut status = 0;
                libc::waitpid(first, &mut status, 0);
            }
            _ => {}
        }
    }
}

/// The watcher: off the child's pipes (their readers must see them close with the child), it
/// waits for the daemon or the child to end, and kills the group if the daemon has ended.
#[allow(unsafe_code)]
unsafe fn watch(daemon: i32, child: i32) -> ! {
    // SAFETY: open(2), dup2(2), poll(2), getpgrp(2), kill(2) and _exit(2) are async-signal-safe;
    // the path is a static C string and `fds` lives across the poll.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
        }
        let mut fds = [
            libc::pollfd {
                fd: daemon,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: child,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        while libc::poll(fds.as_mut_ptr(), 2, -1) < 0 {
            if *libc::__errno_location() != libc::EINTR {
                libc::_exit(0);
            }
        }
        // The child's parent-death signal ends it with the daemon, and the kernel may say so
        // before it says the daemon ended: a child that ended is a reason to look at the
        // daemon once more, a moment later.
        if fds[0].revents == 0 {
            libc::poll(fds.as_mut_ptr(), 1, 200);
        }
        if fds[0].revents != 0 {
            libc::kill(-libc::getpgrp(), libc::SIGKILL);
        }
        libc::_exit(0);
    }
}

/// The command that starts `program` through this process, when [`serve`] was called; the
/// caller adds the arguments, environment, directory and pipes as for `program` itself.
pub fn command(
    program: &OsStr,
    cwd: &Path,
    path_var: Option<&OsStr>,
) -> Option<io::Result<tokio::process::Command>> {
    if !SERVED.load(Ordering::Relaxed) {
        return None;
    }
    let resolved = match resolve(program, cwd, path_var) {
        Ok(resolved) => resolved,
        Err(error) => return Some(Err(error)),
    };
    let mut command = tokio::process::Command::new("/proc/self/exe");
    command
        .arg(MARKER)
        .arg(std::process::id().to_string())
        .arg(resolved)
        // Its own `argv[0]`, as the child would have had it started directly.
        .arg(program);
    Some(Ok(command))
}

/// Where `program` is, as `execvp` would find it: a name with a slash is taken as it is
/// (relative to `cwd`), else the first executable file of that name on `path_var`.
fn resolve(program: &OsStr, cwd: &Path, path_var: Option<&OsStr>) -> io::Result<PathBuf> {
    let executable = |path: &Path| {
        nix::unistd::access(path, AccessFlags::X_OK)
            .map_err(|errno| io::Error::from_raw_os_error(errno as i32))
            .and_then(|()| match std::fs::metadata(path) {
                Ok(meta) if meta.is_file() => Ok(()),
                Ok(_) => Err(io::Error::from_raw_os_error(libc::EACCES)),
                Err(error) => Err(error),
            })
    };
    if program.as_bytes().contains(&b'/') {
        let path = cwd.join(program);
        executable(&path)?;
        return Ok(path);
    }
    let default_path = OsString::from("/usr/local/bin:/usr/bin:/bin");
    let search = path_var.unwrap_or(&default_path);
    let mut denied = None;
    for dir in std::env::split_paths(search) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = cwd.join(dir).join(program);
        match executable(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(error) if error.kind() == io::ErrorKind::PermissionDenied => denied = Some(error),
            Err(_) => {}
        }
    }
    Err(denied.unwrap_or_else(|| io::Error::from_raw_os_error(libc::ENOENT)))
}

#[cfg(test)]
mod tests {
    use super::resolve;
    use std::ffi::OsStr;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn programs_are_found_as_execvp_finds_them() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let tool = bin.join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = bin.join("plain");
        std::fs::write(&plain, "").unwrap();
        let path = std::env::join_paths([dir.path().join("empty"), bin.clone()]).unwrap();

        let found = resolve(OsStr::new("tool"), dir.path(), Some(&path)).unwrap();
        assert_eq!(found, tool);
        // With a slash: relative to the child's directory, not searched.
        let found = resolve(OsStr::new("bin/tool"), dir.path(), Some(OsStr::new(""))).unwrap();
        assert_eq!(found, dir.path().join("bin/tool"));

        let missing = resolve(OsStr::new("nowhere"), dir.path(), Some(&path)).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(
            missing.to_string(),
            std::io::Error::from_raw_os_error(libc::ENOENT).to_string()
        );
        // Root too: a file with no execute bit at all is refused.
        let denied = resolve(OsStr::new("plain"), dir.path(), Some(&path)).unwrap_err();
        assert_eq!(denied.kind(), std::io::ErrorKind::PermissionDenied);
        let denied = resolve(OsStr::new("bin"), dir.path(), Some(OsStr::new("."))).unwrap_err();
        assert_eq!(
            denied.kind(),
            std::io::ErrorKind::PermissionDenied,
            "a directory"
        );
    }
}
