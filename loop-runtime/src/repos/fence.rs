//! A run's fence on its remote: the ref `refs/loop/fence/<run id>`, which makes the remote
//! itself refuse the pushes of a node that lost the run.
//!
//! The log fences appends: of two nodes that think they drive a run, the second to append is
//! refused by the expected version. A remote knows nothing of the log, and a push that a node
//! decided while it held the claim can land after it lost it (a node stopped between the check
//! and the push, a push held up on the way). So the remote gets a fence of its own:
//!
//! - A node about to change who may act on a run by URL (claim it, pause it, cancel it)
//!   first **seizes** the fence: it moves the fence ref to a new commit naming its node and the
//!   version its event will be appended at (`Loop-Node`, `Loop-Version`), with
//!   `--force-with-lease` on the value it read; only then does it append. Whether it may is
//!   [`loop_core::fence::verdict`]'s to say, from what the fence says and the log.
//! - Every push of the run's effects (its branch, the merge into the target) is **atomic with
//!   the fence moved on**: `git push --atomic` with the lease of each ref (the value the node
//!   expects there) and of the fence (the value this node last set). Once another node has
//!   seized the fence, the remote refuses every push of this one, whole.
//!
//! A fence commit has the empty tree and the previous fence as its parent, so the fence's
//! history on the remote is the order in which nodes held the run there and what each landed.

use std::path::Path;

use loop_core::fence::FenceEntry;
use loop_core::{RunId, Version};

use crate::git::{self, GitError};

/// Git's empty tree: what every fence commit holds.
const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// Why a fenced effect, or a move of the fence, did not land.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FenceError {
    /// The fence is no longer where this node expected it: another node moved it. What it
    /// says now decides whether this node lost the run ([`loop_core::fence::verdict`]).
    #[error("the run's fence on the remote moved: {}", match .0 { Some(entry) => format!("node {} for version {}", entry.node, entry.version.0), None => "it is gone".to_owned() })]
    Moved(Option<FenceEntry>),
    /// The fence held, but a ref was not at the value this node expected (someone else moved
    /// it): nothing landed.
    #[error("{0}")]
    Refused(GitError),
    #[error(transparent)]
    Git(#[from] GitError),
}

/// One ref a fenced push moves: from `old` (`None`: it must not exist yet) to `new`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Update<'a> {
    pub reference: &'a str,
    pub old: Option<&'a str>,
    pub new: &'a str,
}

impl Update<'_> {
    /// The `--force-with-lease` that makes a push land only where the remote still holds `old`
    /// (no ref at all when `old` is `None`).
    pub(crate) fn lease(&self) -> String {
        format!(
            "--force-with-lease={}:{}",
            self.reference,
            self.old.unwrap_or_default()
        )
    }

    /// The refspec that moves `reference` to `new`.
    pub(crate) fn refspec(&self) -> String {
        format!("{}:{}", self.new, self.reference)
    }
}

/// This node's hold on a run's fence: the entry it wrote (or adopted) and the fence's value
/// as this node last set it.
#[derive(Clone, Debug)]
pub(crate) struct Fence {
    run_id: RunId,
    entry: FenceEntry,
    value: String,
}

/// The fence ref of a run.
pub(crate) fn reference(run_id: RunId) -> String {
    format!("refs/loop/fence/{run_id}")
}

/// The run's fence on `remote` (a remote's name in `repo`, or a URL) now: its entry and
/// value; `None` when the run has none.
pub(crate) async fn read(
    repo: &Path,
    remote: &str,
    run_id: RunId,
) -> Result<Option<(FenceEntry, String)>, GitError> {
    let reference = reference(run_id);
    let Some(value) = remote_value(repo, remote, &reference).await? else {
        return Ok(None);
    };
    let entry = entry_of(repo, remote, &reference, &value).await?;
    Ok(Some((entry, value)))
}

/// Moves the run's fence on `remote` from `over` (its value now; `None` when it has none) to a
/// new entry naming `node` at `version`, for `what` (a claim, a pause, a cancel). The caller
/// decided it may ([`loop_core::fence::verdict`]); a fence moved meanwhile is
/// [`FenceError::Moved`], for the caller to decide again.
pub(crate) async fn seize(
    repo: &Path,
    remote: &str,
    run_id: RunId,
    entry: FenceEntry,
    what: &str,
    over: Option<&str>,
) -> Result<Fence, FenceError> {
    let reference = reference(run_id);
    if let Some(over) = over {
        have(repo, remote, &reference, over).await?;
    }
    let next = commit(repo, run_id, &entry, what, over).await?;
    let lease = format!(
        "--force-with-lease={reference}:{}",
        over.unwrap_or_default()
    );
    let refspec = format!("{next}:{reference}");
    match git::run(repo, &["push", "--quiet", &lease, remote, &refspec]).await {
        Ok(_) => Ok(Fence {
            run_id,
            entry,
            value: next,
        }),
        Err(error) => match read(repo, remote, run_id).await? {
            now if now.as_ref().map(|(_, value)| value.as_str()) != over => {
                Err(FenceError::Moved(now.map(|(entry, _)| entry)))
            }
            _ => Err(FenceError::Git(error)),
        },
    }
}

impl Fence {
    /// The fence as `read` found it, this node's already for `entry`.
    pub(crate) fn adopt(run_id: RunId, entry: FenceEntry, value: String) -> Fence {
        Fence {
            run_id,
            entry,
            value,
        }
    }

    /// Pushes `updates` to `checkout`'s `origin` in one atomic push with the fence moved on:
    /// all of them land, or none. `effect` names it in the fence's history.
    pub(crate) async fn push(
        &mut self,
        checkout: &Path,
        updates: &[Update<'_>],
        effect: &str,
    ) -> Result<(), FenceError> {
        let reference = reference(self.run_id);
        have(checkout, "origin", &reference, &self.value).await?;
        let next = commit(
            checkout,
            self.run_id,
            &self.entry,
            effect,
            Some(&self.value),
        )
        .await?;
        let mut args: Vec<String> = vec![
            "push".into(),
            "--quiet".into(),
            "--atomic".into(),
            format!("--force-with-lease={reference}:{}", self.value),
        ];
        args.extend(updates.iter().map(Update::lease));
        args.push("origin".into());
        args.push(format!("{next}:{reference}"));
        args.extend(updates.iter().map(Update::refspec));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match git::run(checkout, &args).await {
            Ok(_) => {
                self.value = next;
                Ok(())
            }
            Err(error) => match read(checkout, "origin", self.run_id).await? {
                Some((_, value)) if value == self.value => Err(FenceError::Refused(error)),
                now => Err(FenceError::Moved(now.map(|(entry, _)| entry))),
            },
        }
    }
}

/// A new fence commit on `parent` naming `entry` and `what`.
async fn commit(
    repo: &Path,
    run_id: RunId,
    entry: &FenceEntry,
    what: &str,
    parent: Option<&str>,
) -> Result<String, GitError> {
    // The empty tree may not be in a fresh repository's object store yet.
    git::run(repo, &["hash-object", "-t", "tree", "-w", "/dev/null"]).await?;
    let message = format!(
        "loop fence: {what}\n\nLoop-Run: {run_id}\nLoop-Node: {}\nLoop-Version: {}\n",
        entry.node, entry.version.0
    );
    let mut args = vec![
        "-c",
        "user.name=loop",
        "-c",
        "user.email=loop@localhost",
        "commit-tree",
        EMPTY_TREE,
        "-m",
        &message,
    ];
    if let Some(parent) = parent.filter(|p| !p.is_empty()) {
        args.extend(["-p", parent]);
    }
    git::run(repo, &args).await
}

/// The fence's value on the remote now; `None` when it has none.
async fn remote_value(
    repo: &Path,
    remote: &str,
    reference: &str,
) -> Result<Option<String>, GitError> {
    let listed = git::run(repo, &["ls-remote", remote, reference]).await?;
    Ok(listed.lines().find_map(|line| {
        let (value, name) = line.split_once('\t')?;
        (name == reference).then(|| value.to_owned())
    }))
}

/// Makes sure `repo` has the fence commit `value`, fetching the fence from the remote if not.
async fn have(repo: &Path, remote: &str, reference: &str, value: &str) -> Result<(), GitError> {
    let object = format!("{value}^{{commit}}");
    if git::run(repo, &["cat-file", "-e", &object]).await.is_ok() {
        return Ok(());
    }
    git::run(
        repo,
        &[
            "fetch",
            "--quiet",
            remote,
            &format!("+{reference}:{reference}"),
        ],
    )
    .await
    .map(drop)
}

/// What the fence commit `value` says, fetched from the remote when needed.
async fn entry_of(
    repo: &Path,
    remote: &str,
    reference: &str,
    value: &str,
) -> Result<FenceEntry, GitError> {
    have(repo, remote, reference, value).await?;
    let message = git::run(repo, &["log", "-1", "--format=%B", value]).await?;
    Ok(parse(&message))
}

/// The node and version a fence commit's message names; an unreadable one names version 0,
/// which any entry may follow.
fn parse(message: &str) -> FenceEntry {
    let trailer = |key: &str| {
        message.lines().find_map(|line| {
            line.strip_prefix(key)
                .and_then(|rest| rest.strip_prefix(": "))
                .map(|value| value.trim().to_owned())
        })
    };
    FenceEntry {
        node: trailer("Loop-Node").unwrap_or_default(),
        version: Version(
            trailer("Loop-Version")
                .and_then(|version| version.parse().ok())
                .unwrap_or(0),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_commit_names_its_node_and_version() {
        let entry =
            parse("loop fence: claim\n\nLoop-Run: 01a2\nLoop-Node: node-b\nLoop-Version: 22\n");
        assert_eq!(
            entry,
            FenceEntry {
                node: "node-b".into(),
                version: Version(22)
            }
        );
        assert_eq!(parse("something else").version, Version(0));
    }

    fn entry(node: &str, version: u64) -> FenceEntry {
        FenceEntry {
            node: node.to_owned(),
            version: Version(version),
        }
    }

    /// Two clones of one bare remote, as two nodes have: a holds the run, b takes it over
    /// (seizing the fence from a repository of its own, by URL). From then on nothing of a
    /// lands, whole; b's pushes land; a ref not where b expected it is refused with the fence
    /// still b's.
    #[tokio::test]
    async fn once_another_node_seized_the_fence_nothing_of_the_old_holder_lands() {
        let dir = tempfile::tempdir().expect("temp dir");
        let origin = loop_testkit::Repo::at(dir.path().join("origin")).create();
        let bare = dir.path().join("remote.git");
        let url = loop_testkit::bare_clone(&origin, &bare);
        let clone = |name: &str| {
            loop_testkit::git(dir.path(), &["clone", "--quiet", &url, name]);
            let path = dir.path().join(name);
            loop_testkit::git(&path, &["config", "user.name", "t"]);
            loop_testkit::git(&path, &["config", "user.email", "t@example.invalid"]);
            path
        };
        let (a, b) = (clone("a"), clone("b"));
        let fences_of_b = dir.path().join("fences-b.git");
        loop_testkit::git(dir.path(), &["init", "--quiet", "--bare", "fences-b.git"]);
        let run_id = RunId::from_uuid(uuid::Uuid::now_v7());
        let start = loop_testkit::git(&a, &["rev-parse", "HEAD"]);
        let commit = |repo: &Path, what: &str| {
            std::fs::write(repo.join(what), what).expect("write");
            loop_testkit::git(repo, &["add", "-A"]);
            loop_testkit::git(repo, &["commit", "-qm", what]);
            loop_testkit::git(repo, &["rev-parse", "HEAD"])
        };
        let branch = "refs/heads/run/x";
        assert_eq!(read(&a, "origin", run_id).await.expect("read"), None);
        let mut fence_a = seize(&a, "origin", run_id, entry("node-a", 3), "claim", None)
            .await
            .expect("a seizes");
        let one = commit(&a, "one");
        let update = |old, new| Update {
            reference: branch,
            old,
            new,
        };
        fence_a
            .push(&a, &[update(None, &one)], "push")
            .await
            .expect("a pushes while it holds the fence");
        let (seen, value) = read(&fences_of_b, &url, run_id)
            .await
            .expect("read")
            .expect("a fence");
        assert_eq!(seen, entry("node-a", 3));
        let mut fence_b = seize(
            &fences_of_b,
            &url,
            run_id,
            entry("node-b", 9),
            "claim",
            Some(&value),
        )
        .await
        .expect("b seizes");
        let two = commit(&a, "two");
        let refused = fence_a.push(&a, &[update(Some(&one), &two)], "push").await;
        assert!(
            matches!(&refused, Err(FenceError::Moved(Some(now))) if *now == entry("node-b", 9)),
            "{refused:?}"
        );
        assert_eq!(loop_testkit::git(&bare, &["rev-parse", branch]), one);
        // A seize over a value that is no longer there is refused too.
        let late = seize(
            &a,
            "origin",
            run_id,
            entry("node-a", 10),
            "claim",
            Some(&value),
        )
        .await;
        assert!(matches!(late, Err(FenceError::Moved(_))), "{late:?}");
        loop_testkit::git(&b, &["fetch", "--quiet", "origin"]);
        loop_testkit::git(&b, &["checkout", "--quiet", "-B", "run/x", "origin/run/x"]);
        let three = commit(&b, "three");
        fence_b
            .push(&b, &[update(Some(&one), &three)], "push")
            .await
            .expect("b pushes from its checkout");
        let main = Update {
            reference: "refs/heads/main",
            old: Some(&one),
            new: &three,
        };
        let stale = fence_b.push(&b, &[main], "merge").await;
        assert!(matches!(stale, Err(FenceError::Refused(_))), "{stale:?}");
        assert_eq!(loop_testkit::git(&bare, &["rev-parse", "main"]), start);
        assert_eq!(
            read(&a, "origin", run_id).await.expect("read"),
            Some((entry("node-b", 9), fence_b.value.clone()))
        );
        // The fence's history: a's claim and push, b's claim and push, newest first.
        let history = loop_testkit::git(&bare, &["log", "--format=%s", &reference(run_id)]);
        assert_eq!(
            history.lines().collect::<Vec<_>>(),
            [
                "loop fence: push",
                "loop fence: claim",
                "loop fence: push",
                "loop fence: claim"
            ]
        );
    }
}
