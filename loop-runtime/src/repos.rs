//! Repositories named by URL (`repo_url`) instead of a path, so that any node of a cluster can
//! drive the run.
//!
//! The run's `workspace_root` in the log is the URL itself: the one name every node shares.
//! Each node keeps its own checkout of it in its data dir (`repos/<name>-<hash>`), a clone whose
//! `origin` is the URL; the run's worktree is made there from `origin/<base_branch>`, the run
//! branch is pushed to `origin` after every step that moved it, and a node that takes the run
//! over makes its worktree again from the pushed branch. A merge pushes the target with the
//! old value it merged onto as the lease (`--force-with-lease`), so a target that moved
//! meanwhile refuses it.
//!
//! A path is absolute and a URL is not, which is how the two kinds of run tell apart
//! ([`url_of`]).
//!
//! In a cluster every push of a run is fenced on the remote itself ([`fence`]): a node that
//! lost the run can land nothing there.

pub(crate) mod fence;

mod inputs;

pub(crate) use inputs::{check_branch, check_branches, check_url};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use self::fence::{Fence, FenceError, Update};
use crate::artifacts::sha256_hex;
use crate::git::{self, GitError};

/// The repository URL a run's `workspace_root` names, when it names one rather than a path.
pub(crate) fn url_of(workspace_root: &str) -> Option<&str> {
    (!workspace_root.is_empty() && !Path::new(workspace_root).is_absolute())
        .then_some(workspace_root)
}

/// Where this node keeps its checkout of `url`: under the data dir, named for reading
/// (`<last part of the URL>-<hash>`) and unique per URL.
pub(crate) fn checkout_dir(data_dir: &Path, url: &str) -> PathBuf {
    let tail = url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("repo")
        .trim_end_matches(".git");
    let tail = crate::request::slug(tail);
    let tail = if tail.is_empty() { "repo".into() } else { tail };
    data_dir
        .join("repos")
        .join(format!("{tail}-{}", &sha256_hex(url.as_bytes())[..12]))
}

/// The directory a run works in: its checkout on this node for a run by URL, else its path.
pub(crate) fn workspace_dir(data_dir: &Path, workspace_root: &str) -> PathBuf {
    match url_of(workspace_root) {
        Some(url) => checkout_dir(data_dir, url),
        None => PathBuf::from(workspace_root),
    }
}

/// One lock per checkout: two runs of one repository on a node fetch one at a time.
fn lock_for(dir: &Path) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    Arc::clone(locks.entry(dir.to_owned()).or_default())
}

/// This node's checkout of `url`, cloned when missing and fetched from `origin` either way;
/// its files are those of `origin/<base>` (the remote's default branch when `base` is `None`),
/// and the branch it holds is returned with it.
pub(crate) async fn checkout(
    data_dir: &Path,
    url: &str,
    base: Option<&str>,
) -> Result<(PathBuf, String), GitError> {
    let dir = checkout_dir(data_dir, url);
    let lock = lock_for(&dir);
    let _held = lock.lock().await;
    if !dir.join(".git").exists() {
        clone(url, &dir).await?;
    }
    fetch_held(&dir).await?;
    let base = match base {
        Some(base) => base.to_owned(),
        None => {
            let head = git::run(
                &dir,
                &["symbolic-ref", "--short", "refs/remotes/origin/HEAD"],
            )
            .await?;
            head.strip_prefix("origin/").unwrap_or(&head).to_owned()
        }
    };
    let start = format!("origin/{base}");
    git::run(
        &dir,
        &["checkout", "--quiet", "--force", "--detach", &start],
    )
    .await?;
    Ok((dir, base))
}

/// Clones `url` into `dir` so that a clone cut short (a cancel, a kill, a full disk) never sits
/// at `dir` half made: into a directory beside it, whose `.git` then moves into `dir` in one
/// rename. `dir` may exist already without a `.git` (run directories a node wrote there for a
/// run it never cloned for); what it holds stays. The caller holds the checkout's lock.
async fn clone(url: &str, dir: &Path) -> Result<(), GitError> {
    let parent = dir.parent().unwrap_or(dir);
    let io = |what: &str, e: std::io::Error| GitError {
        command: what.to_owned(),
        dir: parent.display().to_string(),
        stderr: e.to_string(),
    };
    std::fs::create_dir_all(parent).map_err(|e| io("clone", e))?;
    let name = dir.file_name().map_or_else(
        || "repo".to_owned(),
        |name| name.to_string_lossy().into_owned(),
    );
    // One clone of a URL at a time on this node (the lock): a leftover is a dead clone's.
    let partial = parent.join(format!(".{name}.cloning"));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|e| io("clone", e))?;
    }
    let target = partial.to_string_lossy();
    let cloned = git::run(
        parent,
        &["clone", "--quiet", "--no-checkout", "--", url, &target],
    )
    .await;
    if let Err(error) = cloned {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(error);
    }
    std::fs::create_dir_all(dir).map_err(|e| io("clone", e))?;
    std::fs::rename(partial.join(".git"), dir.join(".git")).map_err(|e| io("clone", e))?;
    let _ = std::fs::remove_dir_all(&partial);
    Ok(())
}

/// Holds the checkout's lock: git commands that write its refs (a worktree's branch made, a
/// fetch) then run one at a time on this node.
pub(crate) async fn hold(checkout: &Path) -> tokio::sync::OwnedMutexGuard<()> {
    lock_for(checkout).lock_owned().await
}

/// Fetches `origin` into the checkout, one git at a time per checkout (two ref updates at
/// once fail each other), trying three times before giving up.
pub(crate) async fn fetch(checkout: &Path) -> Result<(), GitError> {
    let lock = lock_for(checkout);
    let _held = lock.lock().await;
    fetch_held(checkout).await
}

async fn fetch_held(checkout: &Path) -> Result<(), GitError> {
    let mut tries = 0;
    loop {
        match git::run(checkout, &["fetch", "--quiet", "--prune", "origin"]).await {
            Ok(_) => return Ok(()),
            Err(error) if tries >= 2 => return Err(error),
            Err(error) => {
                tries += 1;
                tracing::debug!(%error, "fetch failed; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(200 * tries)).await;
            }
        }
    }
}

/// This node's checkout of `url`, fetched: for reading a run another node drove (its diff, a
/// merge asked of this node).
pub(crate) async fn fetched(data_dir: &Path, url: &str) -> Result<PathBuf, GitError> {
    let dir = checkout_dir(data_dir, url);
    if dir.join(".git").exists() {
        fetch(&dir).await?;
        Ok(dir)
    } else {
        checkout(data_dir, url, None).await.map(|(dir, _)| dir)
    }
}

/// Whether the run branch checked out in `worktree` moved since it was last pushed (or
/// fetched) as `branch`.
pub(crate) async fn branch_moved(worktree: &Path, branch: &str) -> bool {
    let head = git::run(worktree, &["rev-parse", "HEAD"]).await.ok();
    let remote = format!("refs/remotes/origin/{branch}");
    let pushed = git::run(worktree, &["rev-parse", "--verify", "--quiet", &remote])
        .await
        .ok();
    head.is_some() && head != pushed
}

/// Pushes the run branch of `worktree` (of `checkout`) to `origin` if it moved since the last
/// push, expecting the remote's branch where this node last saw it (a branch someone else
/// moved meanwhile is not overwritten: the push is refused); with `fence`, atomically with the
/// run's fence, so that nothing lands once another node holds the run. Whether it pushed.
pub(crate) async fn push_run_branch(
    checkout: &Path,
    worktree: &Path,
    branch: &str,
    fence: Option<&mut Fence>,
) -> Result<bool, FenceError> {
    let lock = lock_for(checkout);
    let _held = lock.lock().await;
    let head = git::run(worktree, &["rev-parse", "HEAD"]).await?;
    let remote = format!("refs/remotes/origin/{branch}");
    let pushed = git::run(worktree, &["rev-parse", "--verify", "--quiet", &remote])
        .await
        .ok();
    if pushed.as_deref() == Some(head.as_str()) {
        return Ok(false);
    }
    let reference = format!("refs/heads/{branch}");
    match fence {
        Some(fence) => {
            let update = Update {
                reference: &reference,
                old: pushed.as_deref(),
                new: &head,
            };
            fence
                .push(checkout, &[update], &format!("push {branch}"))
                .await?;
        }
        None => {
            let lease = format!(
                "--force-with-lease={reference}:{}",
                pushed.unwrap_or_default()
            );
            let refspec = format!("{head}:{reference}");
            git::run(worktree, &["push", "--quiet", &lease, "origin", &refspec])
                .await
                .map_err(FenceError::Refused)?;
        }
    }
    // Remember what origin has now, as a fetch would.
    git::run(worktree, &["update-ref", &remote, &head]).await?;
    Ok(true)
}

/// Pushes refs `origin` must not have yet (`updates`, each with `old: None`: a discarded
/// experiment candidate's `refs/loop/experiments/<run>/<iteration>`) from `checkout`, all in one
/// atomic push, with `fence` moved on as for the run branch. A ref the remote already has makes
/// the push refused whole ([`FenceError::Refused`]); [`remote_refs`] says which it has.
pub(crate) async fn push_new_refs(
    checkout: &Path,
    updates: &[Update<'_>],
    fence: Option<&mut Fence>,
) -> Result<(), FenceError> {
    let lock = lock_for(checkout);
    let _held = lock.lock().await;
    match fence {
        Some(fence) => fence.push(checkout, updates, "push experiment refs").await,
        None => {
            let mut args: Vec<String> = vec!["push".into(), "--quiet".into(), "--atomic".into()];
            args.extend(updates.iter().map(Update::lease));
            args.push("origin".into());
            args.extend(updates.iter().map(Update::refspec));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            git::run(checkout, &args)
                .await
                .map(drop)
                .map_err(FenceError::Refused)
        }
    }
}

/// The refs under `prefix` (`refs/loop/experiments/<run>/`) on `checkout`'s `origin`, with
/// the commit each names.
pub(crate) async fn remote_refs(
    checkout: &Path,
    prefix: &str,
) -> Result<Vec<(String, String)>, GitError> {
    let pattern = format!("{prefix}*");
    let listed = git::run(checkout, &["ls-remote", "origin", &pattern]).await?;
    Ok(listed
        .lines()
        .filter_map(|line| {
            let (value, name) = line.split_once('\t')?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect())
}

/// Makes the run's worktree at `path` again on this node (a run another node started, or one
/// this node drives again after another did): on the run branch as `origin` has it, or from
/// `origin/<base>` when it was never pushed. A worktree already at `path` is reset to that
/// commit: what it holds beyond it is an interrupted step's, which runs again.
pub(crate) async fn restore_worktree(
    checkout: &Path,
    path: &Path,
    branch: &str,
    base: &str,
    run_id: &str,
) -> Result<(), GitError> {
    let lock = lock_for(checkout);
    let _held = lock.lock().await;
    fetch_held(checkout).await?;
    let pushed = format!("origin/{branch}");
    let start = if git::run(checkout, &["rev-parse", "--verify", "--quiet", &pushed])
        .await
        .is_ok()
    {
        pushed
    } else {
        base.to_owned()
    };
    let start = git::run(checkout, &["rev-parse", "--verify", &start]).await?;
    if path.join(".git").exists() {
        // A git process of this worktree killed mid-write (the node's daemon killed, or its
        // agent's group stopped when the node lost the run) leaves its lock behind, and every
        // later checkout here would fail on it. This node drives the run again only after its
        // earlier driver and that driver's processes were stopped: nothing holds the lock.
        for lock in ["index.lock", "HEAD.lock"] {
            if let Ok(lock) = git::run(path, &["rev-parse", "--git-path", lock]).await {
                let _ = std::fs::remove_file(path.join(lock.trim()));
            }
        }
        git::run(
            path,
            &["checkout", "--quiet", "--force", "-B", branch, &start],
        )
        .await?;
        git::run(path, &["clean", "--quiet", "-fd"]).await?;
    } else {
        let _ = git::run(checkout, &["worktree", "prune"]).await;
        let target = path.to_string_lossy();
        git::run(
            checkout,
            &["worktree", "add", "--force", "-B", branch, &target, &start],
        )
        .await?;
    }
    git::set_branch_owner(checkout, branch, run_id).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_told_from_a_path_and_gets_a_readable_checkout_of_its_own() {
        assert_eq!(url_of("/srv/repo"), None);
        assert_eq!(url_of(""), None);
        for url in [
            "file:///srv/remote.git",
            "ssh://git@host/team/app.git",
            "https://example.com/team/app",
            "git@host:team/app.git",
        ] {
            assert_eq!(url_of(url), Some(url));
        }
        let data = Path::new("/data");
        let a = checkout_dir(data, "git@host:team/app.git");
        let b = checkout_dir(data, "https://example.com/team/app");
        assert!(a.starts_with("/data/repos"), "{a:?}");
        assert!(
            a.file_name().unwrap().to_string_lossy().starts_with("app-"),
            "{a:?}"
        );
        assert_ne!(a, b, "one checkout per URL");
        assert_eq!(workspace_dir(data, "/srv/repo"), Path::new("/srv/repo"));
        assert_eq!(workspace_dir(data, "git@host:team/app.git"), a);
    }

    /// The fault suite's seed 8908328724419528502 (long): a node killed while its agent's
    /// `git commit` wrote the index took the run back and failed it, "Unable to create
    /// .../index.lock: File exists". A worktree made again over a killed git's lock is made.
    #[tokio::test]
    async fn a_worktree_is_made_again_over_the_lock_a_killed_git_left() {
        let dir = tempfile::tempdir().expect("temp dir");
        let origin = loop_testkit::Repo::at(dir.path().join("origin")).create();
        let bare = dir.path().join("remote.git");
        let url = loop_testkit::bare_clone(&origin, &bare);
        let data = dir.path().join("data");
        let (checkout, base) = checkout(&data, &url, None).await.expect("a checkout");
        let worktree = dir.path().join("wt");
        restore_worktree(
            &checkout,
            &worktree,
            "run/x",
            &format!("origin/{base}"),
            "run-1",
        )
        .await
        .expect("the worktree made");
        let lock = loop_testkit::git(&worktree, &["rev-parse", "--git-path", "index.lock"]);
        let lock = worktree.join(lock.trim());
        std::fs::write(&lock, "").expect("a lock left behind");
        restore_worktree(
            &checkout,
            &worktree,
            "run/x",
            &format!("origin/{base}"),
            "run-1",
        )
        .await
        .expect("the worktree made again over the lock");
        assert!(!lock.exists());
        assert_eq!(
            loop_testkit::git(&worktree, &["rev-parse", "--abbrev-ref", "HEAD"]),
            "run/x"
        );
    }
}
