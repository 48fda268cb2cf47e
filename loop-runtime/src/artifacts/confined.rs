//! Reading files the agent controls: a run's plan and spec in its working tree, the files of
//! its run directory, a workspace's `.loop/config` and specs.
//!
//! The agent may put anything at those paths. A FIFO with no writer blocks `open(2)` for ever
//! (600 requests for a FIFO plan once took every blocking thread of the daemon, `/health`
//! included); a device reads without end; a symbolic link may point at any file the daemon's
//! user can read, which an API answer would then hand to whoever asked. So a file is read here
//! only when it is a regular file reached beneath the directory it belongs to:
//!
//! - opened with `openat2(RESOLVE_BENEATH)` from the directory (a `..` or a symbolic link that
//!   leads out of it is refused by the kernel, at the moment of the open, so swapping a
//!   directory for a link meanwhile gains nothing), `O_NONBLOCK` so that a FIFO or a device
//!   answers at once instead of blocking, `O_NOCTTY`;
//! - then checked with `fstat` on the descriptor: anything but a regular file is refused;
//! - read up to a limit, and from async code on a blocking thread under a time limit (a
//!   regular file on a hung network file system still blocks).
//!
//! A kernel older than 5.6 (no `openat2`) gets the same checks by resolving the path first and
//! opening the result without following a last symbolic link.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};

/// How long an async read may take before it is given up.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a file the agent controls was not read.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The path is absolute, climbs with `..`, or resolves (through a symbolic link) outside
    /// the directory.
    #[error("it leads out of {root}")]
    Outside { root: PathBuf },
    #[error("there is no such file")]
    Missing,
    /// A FIFO, a device, a socket or a directory.
    #[error("it is a {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("it is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("reading it took longer than {} s", READ_TIMEOUT.as_secs())]
    TimedOut,
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Opens `relative` beneath `root` for reading: a regular file, with its length when opened.
pub fn open(root: &Path, relative: &Path) -> Result<(File, u64), Refused> {
    let outside = || Refused::Outside {
        root: root.to_owned(),
    };
    if relative.as_os_str().is_empty()
        || !relative
            .components()
            .all(|part| matches!(part, Component::Normal(_) | Component::CurDir))
    {
        return Err(outside());
    }
    let file = match open_beneath(root, relative) {
        Err(Errno::ENOSYS) => open_resolved(root, relative)?,
        Err(Errno::EXDEV) => return Err(outside()),
        Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => return Err(Refused::Missing),
        Err(errno) => return Err(Refused::Io(io::Error::from(errno))),
        Ok(file) => file,
    };
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if !kind.is_file() {
        return Err(Refused::NotRegular(if kind.is_fifo() {
            "FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "device"
        } else if kind.is_socket() {
            "socket"
        } else if kind.is_dir() {
            "directory"
        } else {
            "special file"
        }));
    }
    Ok((file, meta.len()))
}

/// Reads `relative` beneath `root` whole, when it is a regular file of at most `limit` bytes.
pub fn read(root: &Path, relative: &Path, limit: u64) -> Result<Vec<u8>, Refused> {
    let (file, length) = open(root, relative)?;
    if length > limit {
        return Err(Refused::TooLarge { limit });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
    // One byte past the limit tells a file that grew since its length was read.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(Refused::TooLarge { limit });
    }
    Ok(bytes)
}

/// [`read`] on a blocking thread, given up after [`READ_TIMEOUT`].
pub async fn read_async(root: &Path, relative: &Path, limit: u64) -> Result<Vec<u8>, Refused> {
    let (root, relative) = (root.to_owned(), relative.to_owned());
    let reading = tokio::task::spawn_blocking(move || read(&root, &relative, limit));
    match tokio::time::timeout(READ_TIMEOUT, reading).await {
        Ok(Ok(result)) => result,
        Ok(Err(error)) => Err(Refused::Io(io::Error::other(error))),
        Err(_) => Err(Refused::TimedOut),
    }
}

/// `path` as a path beneath `root`: stripped of `root` when it starts with it, else as it is
/// (an absolute path elsewhere stays absolute, and [`open`] refuses it).
pub fn beneath<'a>(root: &Path, path: &'a Path) -> &'a Path {
    path.strip_prefix(root).unwrap_or(path)
}

fn open_beneath(root: &Path, relative: &Path) -> Result<File, Errno> {
    let dir = File::open(root)
        .map_err(|error| error.raw_os_error().map_or(Errno::EIO, Errno::from_raw))?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    nix::fcntl::openat2(&dir, relative, how).map(File::from)
}

/// Without `openat2`: the path resolved and checked to be beneath the resolved root, then
/// opened without following a symbolic link swapped in meanwhile.
fn open_resolved(root: &Path, relative: &Path) -> Result<File, Refused> {
    let root = root.canonicalize().map_err(|_| Refused::Missing)?;
    let path = root
        .join(relative)
        .canonicalize()
        .map_err(|_| Refused::Missing)?;
    if !path.starts_with(&root) {
        return Err(Refused::Outside { root });
    }
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_NOFOLLOW)
        .open(&path)
        .map_err(Refused::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_beneath_the_directory_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir_all(root.join("specs")).unwrap();
        std::fs::write(root.join("specs/plan.md"), "- [ ] one\n").unwrap();
        std::fs::write(dir.path().join("secret"), "outside").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("out")).unwrap();
        std::os::unix::fs::symlink("specs/plan.md", root.join("in")).unwrap();
        nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        std::os::unix::fs::symlink("/dev/zero", root.join("zero")).unwrap();

        let read = |name: &str| read(&root, Path::new(name), 1 << 20);
        assert_eq!(read("specs/plan.md").unwrap(), b"- [ ] one\n");
        assert_eq!(read("./specs/plan.md").unwrap(), b"- [ ] one\n");
        assert_eq!(
            read("in").unwrap(),
            b"- [ ] one\n",
            "a link that stays inside"
        );
        for outside in ["out", "../secret", "zero", "specs/../../secret"] {
            assert!(
                matches!(read(outside), Err(Refused::Outside { .. })),
                "{outside}: {:?}",
                read(outside)
            );
        }
        let absolute = dir.path().join("secret");
        assert!(matches!(
            read(&absolute.to_string_lossy()),
            Err(Refused::Outside { .. })
        ));
        // A FIFO nobody writes to answers at once.
        assert!(matches!(read("fifo"), Err(Refused::NotRegular("FIFO"))));
        assert!(matches!(
            read("specs"),
            Err(Refused::NotRegular("directory"))
        ));
        assert!(matches!(read("nothing"), Err(Refused::Missing)));
        assert!(matches!(read(""), Err(Refused::Outside { .. })));
        assert!(matches!(
            super::read(&root, Path::new("specs/plan.md"), 4),
            Err(Refused::TooLarge { limit: 4 })
        ));
    }

    #[test]
    fn without_openat2_the_same_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("plan.md"), "x").unwrap();
        std::fs::write(dir.path().join("secret"), "outside").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("out")).unwrap();
        nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(open_resolved(&root, Path::new("plan.md")).is_ok());
        assert!(matches!(
            open_resolved(&root, Path::new("out")),
            Err(Refused::Outside { .. })
        ));
        // Opened without blocking; `open` then refuses it by its type.
        let fifo = open_resolved(&root, Path::new("fifo")).unwrap();
        assert!(fifo.metadata().unwrap().file_type().is_fifo());
    }

    #[test]
    fn a_path_given_with_its_root_is_read_beneath_it() {
        let root = Path::new("/srv/repo");
        assert_eq!(
            beneath(root, Path::new("/srv/repo/specs/a.md")),
            Path::new("specs/a.md")
        );
        assert_eq!(
            beneath(root, Path::new("specs/a.md")),
            Path::new("specs/a.md")
        );
        assert_eq!(
            beneath(root, Path::new("/etc/passwd")),
            Path::new("/etc/passwd")
        );
    }
}
