//! The run directory (`<workspace>/<log_dir>/run-<id>/`) and its global mirror
//! (`<global_log_dir>/runs/run-<id>/`), per `artifact_mode`.
//!
//! Files the run produces are recorded as `ARTIFACT_WRITTEN` with their SHA-256, once per
//! location. The projection files (`report.tsv`, `summary.json`, `run.log`, `events.jsonl`) are
//! not: they are folds of the log, which `loopctl export` reproduces byte for byte.

pub mod confined;

use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use loop_core::RunId;
use loop_core::config::{ArtifactMode, RunConfig};
use loop_core::event::{ArtifactLocation, ArtifactWritten, RunCreated};
use loop_core::layout::{run_dir_name, workspace_run_dir};
use sha2::{Digest, Sha256};

/// The directories of one run.
#[derive(Clone, Debug)]
pub struct RunFiles {
    dirs: Vec<(ArtifactLocation, PathBuf)>,
}

impl RunFiles {
    /// The run's directories per `artifact_mode`; `data_dir` is the mirror root when
    /// `global_log_dir` is unset.
    pub fn new(
        created: &RunCreated,
        run_id: RunId,
        config: &RunConfig,
        data_dir: &Path,
    ) -> RunFiles {
        let workspace = (
            ArtifactLocation::Workspace,
            workspace_run_dir(created, run_id),
        );
        let root = config
            .global_log_dir
            .as_ref()
            .map_or_else(|| data_dir.to_owned(), PathBuf::from);
        let global = (
            ArtifactLocation::Global,
            root.join("runs").join(run_dir_name(run_id)),
        );
        let dirs = match config.artifact_mode {
            ArtifactMode::Workspace => vec![workspace],
            ArtifactMode::Global => vec![global],
            ArtifactMode::Mirror => vec![workspace, global],
        };
        RunFiles { dirs }
    }

    /// Creates the directories, owner-only.
    pub fn create(&self) -> io::Result<()> {
        for (_, dir) in &self.dirs {
            DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        Ok(())
    }

    /// Creates the directory `name` (e.g. `analysis`) in every copy of the run directory,
    /// owner-only.
    pub fn create_dir(&self, name: &str) -> io::Result<()> {
        for (_, dir) in &self.dirs {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir.join(name))?;
        }
        Ok(())
    }

    /// The primary copy of the run directory: where files are written first and read back.
    pub fn dir(&self) -> &Path {
        &self.dirs[0].1
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// Writes `contents` as `name` in every location (one file, rewritten in place, its
    /// mirror a link: [`overwrite`], [`mirror`]) and returns what to record.
    pub fn write(
        &self,
        kind: &str,
        name: &str,
        contents: &[u8],
    ) -> io::Result<Vec<ArtifactWritten>> {
        overwrite(&self.path(name), contents)?;
        self.record(kind, name)
    }

    /// Puts the primary `name` in the other locations and returns what to record.
    ///
    /// Step logs can be as large as an agent's output: the file is hashed in streaming
    /// fashion, never held in memory whole, and mirrored without copying ([`mirror`]).
    pub fn record(&self, kind: &str, name: &str) -> io::Result<Vec<ArtifactWritten>> {
        let primary = self.path(name);
        let (sha256, bytes) = sha256_file(&primary)?;
        let mut written = Vec::new();
        for (i, (location, dir)) in self.dirs.iter().enumerate() {
            let path = dir.join(name);
            if i > 0 {
                mirror(&primary, &path)?;
            }
            written.push(ArtifactWritten {
                kind: kind.to_owned(),
                path: path.to_string_lossy().into_owned(),
                location: *location,
                sha256: sha256.clone(),
                bytes,
            });
        }
        Ok(written)
    }

    /// Writes a projection file everywhere, unrecorded.
    pub fn write_projection(&self, name: &str, contents: &str) -> io::Result<()> {
        for (_, dir) in &self.dirs {
            std::fs::write(dir.join(name), contents)?;
        }
        Ok(())
    }

    /// Appends to a projection file everywhere, unrecorded.
    pub fn append_projection(&self, name: &str, contents: &str) -> io::Result<()> {
        use std::io::Write;
        for (_, dir) in &self.dirs {
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(dir.join(name))?
                .write_all(contents.as_bytes())?;
        }
        Ok(())
    }

    /// Removes `name` everywhere; a missing file is fine.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        for (_, dir) in &self.dirs {
            match std::fs::remove_file(dir.join(name)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Makes `copy` hold what `primary` holds: a hard link to it where the file system allows
/// one, else a copy.
///
/// A link costs no new inode and no second write of the bytes: on the benchmark machine's
/// ext4 (no journal) a new inode cost 0.37 ms, and step files were half of the runtime's new
/// files per step; a 100 MiB log was written twice. The runtime writes a recorded file whole
/// and records it again after every rewrite, so both names always hold the same bytes, as
/// copies would. A copy that already is the same file is left alone.
fn mirror(primary: &Path, copy: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let same =
        |a: &std::fs::Metadata, b: &std::fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
    let source = std::fs::metadata(primary)?;
    match std::fs::symlink_metadata(copy) {
        Ok(existing) if same(&source, &existing) => return Ok(()),
        Ok(_) => std::fs::remove_file(copy)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match std::fs::hard_link(primary, copy) {
        Ok(()) => Ok(()),
        // Another file system (`global_log_dir` elsewhere), or one without links.
        Err(_) => std::fs::copy(primary, copy).map(drop),
    }
}

/// Makes the file `path` hold `contents`, writing over what it held rather than truncating it
/// first.
///
/// Files rewritten every step (`prompt.txt`, the process ledger's entries) are a few KiB: a
/// truncation to nothing freed their block on every rewrite, and on the benchmark machine's
/// ext4, mounted `discard`, each freed block was a discard request to the disk; written over,
/// the file keeps its block and is cut only past the new end. Whoever reads the file does so
/// after it is written (an agent is started after its prompt is), never during.
pub(crate) fn overwrite(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.set_len(contents.len() as u64)
}

/// SHA-256 of a file as lowercase hex, and its length, reading it in 64 KiB pieces.
fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex(&hasher.finalize()), total))
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::{mirror, overwrite, sha256_file, sha256_hex};

    #[test]
    fn a_file_written_over_holds_exactly_the_new_contents_in_the_same_file() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("prompt.txt");
        overwrite(&path, b"a first prompt, fairly long").expect("write");
        let inode = std::fs::metadata(&path).expect("meta").ino();
        for text in [
            "shorter",
            "",
            "a third prompt, longer than the first one was",
            "x",
        ] {
            overwrite(&path, text.as_bytes()).expect("write over");
            assert_eq!(std::fs::read_to_string(&path).expect("read"), text);
            assert_eq!(std::fs::metadata(&path).expect("meta").ino(), inode);
        }
    }

    #[test]
    fn a_mirrored_file_holds_the_same_bytes_after_every_rewrite() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (primary, copy) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
        std::fs::write(&copy, "an older, unrelated file").expect("write");
        for text in ["first prompt", "second, longer prompt", "third"] {
            std::fs::write(&primary, text).expect("write");
            mirror(&primary, &copy).expect("mirror");
            assert_eq!(std::fs::read_to_string(&copy).expect("read"), text);
        }
        std::fs::remove_file(&primary).expect("remove the primary");
        assert_eq!(
            std::fs::read_to_string(&copy).expect("the copy outlives it"),
            "third"
        );
    }

    #[test]
    fn a_file_hashed_in_pieces_hashes_as_a_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("big.log");
        let contents: Vec<u8> = (0..200_000u32).flat_map(|n| n.to_le_bytes()).collect();
        std::fs::write(&path, &contents).expect("write");
        let (sha, bytes) = sha256_file(&path).expect("hash");
        assert_eq!((sha, bytes), (sha256_hex(&contents), contents.len() as u64));
    }
}
