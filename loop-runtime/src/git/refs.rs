//! `HEAD` and refs read from the repository's files instead of a `git` process.
//!
//! The driver asks for `HEAD` around every step (the watchdog's idle evidence, the review
//! prompt, the completion commit). A `git rev-parse` costs a process, 1.4–1.5 ms on the
//! benchmark machine, four times an iteration: most of the runtime's own time per step. What
//! it reads is small and documented (`gitrepository-layout(5)`, `git-worktree(1)`): the
//! `.git` directory or the `gitdir:` file of a worktree, its `commondir`, `HEAD`, a loose ref
//! file, `packed-refs`. A crate such as `gix` reads the same files but brings a large
//! dependency tree for four file reads, so this is a small reader instead.
//!
//! It answers only when the files answer plainly. Anything it does not model — `GIT_DIR` and
//! friends in the environment, a reftable repository, a bare repository, a `.git` owned by
//! someone else (git's `safe.directory` check), a search that would cross a filesystem
//! boundary, a file it cannot parse — is [`Resolved::Ask`], and the caller runs git as before.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What the files say a name resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// The commit it points at.
    Commit(String),
    /// Nothing: outside a repository, or a ref not (yet) written (an unborn branch).
    Missing,
    /// The files do not answer plainly; ask git.
    Ask,
}

/// Environment variables that change where git looks for the repository.
const REPO_ENV: [&str; 5] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_COMMON_DIR",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
];

/// How many symbolic refs are followed before giving up (git's own limit is 5).
const MAX_SYMREF_DEPTH: usize = 5;

/// The commit `HEAD` of the repository or worktree containing `dir` points at.
pub fn head(dir: &Path) -> Resolved {
    match Layout::discover(dir) {
        Found::Layout(layout) => layout.resolve("HEAD", 0),
        Found::NoRepository => Resolved::Missing,
        Found::Ask => Resolved::Ask,
    }
}

/// The commit `refs/heads/<branch>` points at, in the repository containing `dir`.
pub fn branch(dir: &Path, branch: &str) -> Resolved {
    if !plain_ref_name(branch) {
        return Resolved::Ask;
    }
    match Layout::discover(dir) {
        Found::Layout(layout) => layout.resolve(&format!("refs/heads/{branch}"), 0),
        Found::NoRepository => Resolved::Missing,
        Found::Ask => Resolved::Ask,
    }
}

/// Where a worktree's own files (`HEAD`) and the shared ones (refs, `packed-refs`) are.
#[derive(Debug)]
struct Layout {
    git_dir: PathBuf,
    common_dir: PathBuf,
}

enum Found {
    Layout(Layout),
    NoRepository,
    Ask,
}

impl Layout {
    /// Looks for `.git` in `dir` and its parents, as git does without environment overrides.
    fn discover(dir: &Path) -> Found {
        if REPO_ENV.iter().any(|name| std::env::var_os(name).is_some()) {
            return Found::Ask;
        }
        let Ok(start) = std::path::absolute(dir) else {
            return Found::Ask;
        };
        let Ok(start_meta) = std::fs::metadata(&start) else {
            // git fails in a directory that is not there; so does the caller's answer.
            return Found::NoRepository;
        };
        let device = start_meta.dev();
        let mut here: &Path = &start;
        loop {
            let dot_git = here.join(".git");
            match std::fs::symlink_metadata(&dot_git) {
                Ok(meta) if meta.is_dir() => return Layout::at(here, dot_git),
                Ok(meta) if meta.is_file() => {
                    return match gitdir_file(&dot_git, here) {
                        Some(git_dir) => Layout::at(here, git_dir),
                        None => Found::Ask,
                    };
                }
                Ok(_) => return Found::Ask,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => return Found::Ask,
            }
            let Some(parent) = here.parent() else {
                return Found::NoRepository;
            };
            // git stops at a filesystem boundary unless told otherwise; rather than model
            // that, let git decide.
            match std::fs::metadata(parent) {
                Ok(meta) if meta.dev() == device => here = parent,
                _ => return Found::Ask,
            }
        }
    }

    fn at(worktree: &Path, git_dir: PathBuf) -> Found {
        // git refuses a repository owned by someone else unless `safe.directory` says so:
        // leave that judgement to git. (`/proc/self` is owned by this process's effective
        // user.)
        let owner = |path: &Path| std::fs::metadata(path).ok().map(|meta| meta.uid());
        let me = owner(Path::new("/proc/self"));
        let git_dir_is_dir = std::fs::metadata(&git_dir).is_ok_and(|meta| meta.is_dir());
        if me.is_none() || !git_dir_is_dir || owner(worktree) != me || owner(&git_dir) != me {
            return Found::Ask;
        }
        let common_dir = match std::fs::read_to_string(git_dir.join("commondir")) {
            Ok(text) => {
                let text = text.trim_end_matches(['\n', '\r']);
                if text.is_empty() {
                    return Found::Ask;
                }
                git_dir.join(text)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => git_dir.clone(),
            Err(_) => return Found::Ask,
        };
        // A reftable repository keeps its refs in binary tables.
        if common_dir.join("reftable").exists() {
            return Found::Ask;
        }
        Found::Layout(Layout {
            git_dir,
            common_dir,
        })
    }

    /// Follows `name` through symbolic refs to a commit.
    fn resolve(&self, name: &str, depth: usize) -> Resolved {
        if depth > MAX_SYMREF_DEPTH || !plain_ref_name(name) {
            return Resolved::Ask;
        }
        let loose = self.ref_dir(name).join(name);
        match std::fs::read_to_string(&loose) {
            Ok(text) => {
                let text = text.trim_end_matches(['\n', '\r']);
                if let Some(target) = text.strip_prefix("ref: ") {
                    return self.resolve(target.trim(), depth + 1);
                }
                if is_object_id(text) {
                    return Resolved::Commit(text.to_owned());
                }
                Resolved::Ask
            }
            // A directory where a ref would be (`refs/heads/a` when `a/b` exists) is no ref.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory
                ) =>
            {
                if name == "HEAD" {
                    // A git dir without `HEAD` is not a repository to git.
                    return Resolved::Ask;
                }
                self.packed(name)
            }
            Err(_) => Resolved::Ask,
        }
    }

    /// Per-worktree refs live in the worktree's git dir, the others in the common dir.
    fn ref_dir(&self, name: &str) -> &Path {
        let per_worktree = name == "HEAD"
            || !name.starts_with("refs/")
            || ["refs/bisect/", "refs/worktree/", "refs/rewritten/"]
                .iter()
                .any(|prefix| name.starts_with(prefix));
        if per_worktree {
            &self.git_dir
        } else {
            &self.common_dir
        }
    }

    /// `name` in `packed-refs`: lines `<oid> <name>`, `^<oid>` peel lines, `#` comments.
    fn packed(&self, name: &str) -> Resolved {
        let text = match std::fs::read_to_string(self.common_dir.join("packed-refs")) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Resolved::Missing,
            Err(_) => return Resolved::Ask,
        };
        for line in text.lines() {
            if line.starts_with('#') || line.starts_with('^') {
                continue;
            }
            let Some((oid, refname)) = line.split_once(' ') else {
                return Resolved::Ask;
            };
            if refname == name {
                return if is_object_id(oid) {
                    Resolved::Commit(oid.to_owned())
                } else {
                    Resolved::Ask
                };
            }
        }
        Resolved::Missing
    }
}

/// The git dir a worktree's `.git` file names (`gitdir: <path>`, relative to the worktree).
fn gitdir_file(dot_git: &Path, worktree: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(dot_git).ok()?;
    let path = text
        .trim_end_matches(['\n', '\r'])
        .strip_prefix("gitdir: ")?;
    (!path.is_empty()).then(|| worktree.join(path))
}

/// A SHA-1 or SHA-256 object id in lowercase hex.
fn is_object_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64)
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A ref name that is safe to join onto a directory: no `..`, no empty or hidden components,
/// nothing git would reject that could still name a file.
fn plain_ref_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.ends_with('/')
        && !name.ends_with(".lock")
        && name.split('/').all(|part| {
            !part.is_empty()
                && !part.starts_with('.')
                && !part.contains("..")
                && !part
                    .bytes()
                    .any(|b| b.is_ascii_control() || b" ~^:?*[\\".contains(&b))
        })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use loop_testkit::repo::{Repo, git};

    use super::{Resolved, branch, head};

    fn commit_of(dir: &Path, name: &str) -> Resolved {
        Resolved::Commit(git(dir, &["rev-parse", "--verify", name]))
    }

    fn repo(dir: &Path) -> std::path::PathBuf {
        Repo::at(dir.join("repo")).create()
    }

    #[test]
    fn head_of_a_branch_is_read_from_its_loose_ref() {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = repo(dir.path());
        assert_eq!(head(&repo), commit_of(&repo, "HEAD"));
        assert_eq!(head(&repo.join("specs/planning")), commit_of(&repo, "HEAD"));
        assert_eq!(branch(&repo, "main"), commit_of(&repo, "main"));
        assert_eq!(branch(&repo, "nope"), Resolved::Missing);
    }

    #[test]
    fn head_follows_new_commits() {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = repo(dir.path());
        let first = head(&repo);
        git(&repo, &["commit", "-q", "--allow-empty", "-m", "two"]);
        assert_ne!(head(&repo), first);
        assert_eq!(head(&repo), commit_of(&repo, "HEAD"));
    }

    #[test]
    fn packed_refs_are_read_when_no_loose_ref_exists() {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = repo(dir.path());
        git(&repo, &["branch", "side"]);
        git(&repo, &["tag", "-a", "-m", "tag", "v1"]);
        git(&repo, &["pack-refs", "--all"]);
        assert!(!repo.join(".git/refs/heads/main").exists(), "packed");
        assert_eq!(head(&repo), commit_of(&repo, "HEAD"));
        assert_eq!(branch(&repo, "side"), commit_of(&repo, "side"));
        // A loose ref written after packing wins over the packed one.
        git(&repo, &["commit", "-q", "--allow-empty", "-m", "two"]);
        assert_eq!(head(&repo), commit_of(&repo, "HEAD"));
        assert_ne!(head(&repo), branch(&repo, "side"));
    }

    #[test]
    fn a_detached_head_is_the_commit_itself() {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = repo(dir.path());
        git(&repo, &["commit", "-q", "--allow-empty", "-m", "two"]);
        git(&repo, &["checkout", "-q", "--detach", "HEAD~1"]);
        assert_eq!(head(&repo), commit_of(&repo, "HEAD"));
        assert_ne!(head(&repo), branch(&repo, "main"));
    }

    #[test]
    fn a_worktree_reads_its_own_head_and_the_shared_refs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = repo(dir.path());
        let tree = dir.path().join("tree");
        git(
            &repo,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                "run-1",
                tree.to_str().unwrap(),
            ],
        );
        git(
            &tree,
            &["commit", "-q", "--allow-empty", "-m", "in the tree"],
        );
        assert_eq!(head(&tree), commit_of(&tree, "HEAD"));
        assert_ne!(head(&tree), head(&repo));
        assert_eq!(branch(&repo, "run-1"), head(&tree));
        assert_eq!(branch(&tree, "main"), head(&repo));
        git(&repo, &["pack-refs", "--all"]);
        assert_eq!(head(&tree), commit_of(&tree, "HEAD"));
        git(&tree, &["checkout", "-q", "--detach", "main"]);
        assert_eq!(head(&tree), commit_of(&repo, "main"));
    }

    #[test]
    fn an_unborn_branch_and_a_plain_directory_have_no_head() {
        let dir = tempfile::tempdir().expect("temp dir");
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).expect("mkdir");
        git(&empty, &["init", "-q", "-b", "main"]);
        assert_eq!(head(&empty), Resolved::Missing);
        let plain = dir.path().join("plain");
        std::fs::create_dir(&plain).expect("mkdir");
        // The temp dir may itself sit inside a repository; only assert what git says.
        let by_git = std::process::Command::new("git")
            .args(["rev-parse", "--verify", "--quiet", "HEAD"])
            .current_dir(&plain)
            .output()
            .expect("git");
        if !by_git.status.success() {
            assert!(matches!(head(&plain), Resolved::Missing | Resolved::Ask));
        }
    }

    #[test]
    fn names_that_could_leave_the_git_dir_are_not_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = repo(dir.path());
        for name in ["../HEAD", "a/../../b", ".hidden", "a//b", "x.lock", ""] {
            assert_eq!(branch(&repo, name), Resolved::Ask, "{name}");
        }
    }
}
