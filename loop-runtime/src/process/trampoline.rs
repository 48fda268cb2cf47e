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
//! small process arms its own parent-death signal, makes sure its parent is still the one that
//! started it, and stays as the child's [`keeper`](super::keeper): the child's parent, a
//! subreaper that ends every descendant with the child, setsid ones included. A program that does not call [`serve`] (a library
//! user's, the runtime's own tests) gets the fork and the `pre_exec` hook as before.
//!
//! Should the keeper itself be killed, what it leaves is the [`reaper`](super::reaper)'s: the
//! same program started once more, which kills the children's trees and groups when the program
//! dies.
//!
//! The program is looked up in the parent, on the child's `PATH`, so a missing or
//! non-executable agent is the same `spawn` error it always was, not an exit status.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::unistd::AccessFlags;

/// The first argument that makes a program that calls [`serve`] a trampoline.
pub const MARKER: &str = "--loop-runtime-start-child";

/// Whether this process answers to [`MARKER`].
static SERVED: AtomicBool = AtomicBool::new(false);

/// Call first thing in `main`. Started as a trampoline, this becomes the child's keeper (it
/// never returns); otherwise it notes that children may be started
/// through this program, and returns.
pub fn serve() {
    let mut args = std::env::args_os().skip(1);
    let first = args.next();
    if first.as_deref() == Some(OsStr::new(super::reaper::MARKER)) {
        super::reaper::serve();
    }
    if first.as_deref() != Some(OsStr::new(MARKER)) {
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
    super::keeper::serve(parent, program, name, args.collect());
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
