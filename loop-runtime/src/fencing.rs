//! Taking a run's fence on its remote ([`crate::repos::fence`]) with the log's say: what the
//! fence holds now, read from the remote, judged by [`loop_core::fence::verdict`] against the
//! run's log and the nodes' leases, then adopted, seized, waited for or given up.
//!
//! A node takes the fence before it appends what changes who may act on a run by URL (its
//! claim, a pause, a cancel) at the version it takes it for, and its driver before any effect
//! on the remote; a fence that moved under a push is judged the same way.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use loop_core::fence::{FenceEntry, FenceVerdict, verdict};
use loop_core::{Command, RunId, RunState, Version};

use crate::error::RuntimeError;
use crate::git::{self, GitError};
use crate::journal::Journal;
use crate::repos::fence::{self, Fence, FenceError};

/// How long a node waits for another live node's fence entry to reach the log (its append is
/// under way) before it gives up for now.
const WAIT_FOR_ENTRY: Duration = Duration::from_secs(5);

/// What came of taking a run's fence.
#[derive(Debug)]
pub(crate) enum Taken {
    Held(Fence),
    /// A later claim, pause or cancel holds it: this node may land nothing more of the run.
    Lost {
        node: String,
    },
    /// The remote could not be reached (or another node's entry never reached the log in
    /// time): the node goes on without the fence and tries again before its next effect.
    Unavailable(String),
}

/// Where a node takes fences of runs it has no checkout of (a claim, a pause, a cancel): a
/// bare repository of its own in the data dir, made on first use, which holds fence commits
/// only and reaches each remote by its URL.
pub(crate) async fn fences_repo(data_dir: &Path) -> Result<PathBuf, GitError> {
    let repo = data_dir.join("fences.git");
    let _held = crate::repos::hold(&repo).await;
    if !repo.join("HEAD").exists() {
        std::fs::create_dir_all(data_dir).map_err(|e| GitError {
            command: "init".to_owned(),
            dir: data_dir.display().to_string(),
            stderr: e.to_string(),
        })?;
        git::run(data_dir, &["init", "--quiet", "--bare", "fences.git"]).await?;
    }
    Ok(repo)
}

/// Takes run `run_id`'s fence on `remote` (of `repo`) for this node at `version`, for `what`.
pub(crate) async fn take(
    journal: &Journal,
    repo: &Path,
    remote: &str,
    run_id: RunId,
    version: Version,
    what: &str,
) -> Result<Taken, RuntimeError> {
    let Some(me) = journal.node_id().map(str::to_owned) else {
        return Ok(Taken::Unavailable("not a cluster node".to_owned()));
    };
    let mine = FenceEntry {
        node: me.clone(),
        version,
    };
    let since = Instant::now();
    loop {
        let now = match fence::read(repo, remote, run_id).await {
            Ok(now) => now,
            Err(error) => return Ok(Taken::Unavailable(error.to_string())),
        };
        let entry = now.as_ref().map(|(entry, _)| entry);
        match judge(journal, run_id, entry, &me, version).await? {
            FenceVerdict::Adopt => {
                let (entry, value) = now.expect("adopted from a fence");
                return Ok(Taken::Held(Fence::adopt(run_id, entry, value)));
            }
            FenceVerdict::Lost { node, .. } => return Ok(Taken::Lost { node }),
            FenceVerdict::Wait { node } => {
                if since.elapsed() > WAIT_FOR_ENTRY {
                    return Ok(Taken::Unavailable(format!(
                        "node {node}'s entry on the run's fence has not reached the log"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            FenceVerdict::Seize => {
                let over = now.as_ref().map(|(_, value)| value.as_str());
                match fence::seize(repo, remote, run_id, mine.clone(), what, over).await {
                    Ok(fence) => return Ok(Taken::Held(fence)),
                    // Someone moved it meanwhile: judge what it says now.
                    Err(FenceError::Moved(_)) => {}
                    Err(error) => return Ok(Taken::Unavailable(error.to_string())),
                }
            }
        }
    }
}

/// The verdict on the run's fence `entry` for `me` at `version`, from the run's log and the
/// nodes' leases as the store has them now.
pub(crate) async fn judge(
    journal: &Journal,
    run_id: RunId,
    entry: Option<&FenceEntry>,
    me: &str,
    version: Version,
) -> Result<FenceVerdict, RuntimeError> {
    let records = journal.read_run(run_id).await?;
    let nodes = journal.read(|store| store.nodes()).await?;
    Ok(verdict(entry, &records, me, version, |node| {
        nodes
            .iter()
            .any(|seen| seen.beat.node_id == node && seen.holds_lease())
    }))
}

/// Before this node claims a run it does not hold (`state`, as the claim is decided against):
/// for a run by URL, the run's fence on the remote taken for the version the claim gets, so
/// that once the claim is in the log an earlier holder's effects can no longer land there. The
/// version the claim must then be appended on (the run must not move on meanwhile: the fence
/// names the claim's version); `None` when the run has no remote, or the remote cannot be
/// reached (the claim goes on: the driver takes the fence before its first effect there). A
/// later claim, pause or cancel on the fence is [`RuntimeError::Fenced`].
pub(crate) async fn before_claim(
    journal: &Journal,
    data_dir: &Path,
    run_id: RunId,
    state: &RunState,
) -> Result<Option<Version>, RuntimeError> {
    let Some(url) = remote_of(state) else {
        return Ok(None);
    };
    let at = state.version();
    let taken = match fences_repo(data_dir).await {
        Ok(repo) => take(journal, &repo, &url, run_id, at.next(), "claim").await?,
        Err(error) => Taken::Unavailable(error.to_string()),
    };
    match taken {
        Taken::Held(_) => Ok(Some(at)),
        Taken::Lost { node } => Err(RuntimeError::Fenced { run_id, node }),
        Taken::Unavailable(why) => {
            tracing::warn!(%run_id, %why, "cannot take the run's fence on the remote before claiming it");
            Ok(None)
        }
    }
}

/// Appends `command`, a pause or a cancel (`what`), taken through any node. A run by URL in a
/// cluster gets its fence on the remote first, for the version the event is appended at, so
/// that once it is in the log the node driving the run can land nothing more there (whatever
/// it decided before; it stops as soon as it reads the event). A remote this node cannot reach
/// does not hold the command up.
pub(crate) async fn release(
    journal: &Journal,
    data_dir: &Path,
    run_id: RunId,
    command: Command,
    what: &str,
) -> Result<(), RuntimeError> {
    let url = match journal.node_id() {
        Some(_) => remote_of(&journal.state(run_id).await?),
        None => None,
    };
    let Some(url) = url else {
        return journal.execute(run_id, vec![command]).await.map(drop);
    };
    let repo = fences_repo(data_dir).await;
    // A driver at work appends in bursts (a step's end, its commit, its push) while the fence
    // is taken over git: a fixed few tries can all lose the race to it on a busy machine, and a
    // pause recorded without its entry would let the driver's push land after it. The bursts
    // last a second or two, so tries go on for a time budget instead.
    let since = Instant::now();
    while since.elapsed() < RELEASE_BUDGET {
        let state = journal.state(run_id).await?;
        let at = state.version();
        // A pause or a cancel closes the open step first (its STEP_FINISHED comes before it):
        // the entry names the version of the pause or cancel itself, the one the verdict looks
        // for; an entry at the step's version would read as a race this node lost, and the
        // driver would seize the fence back and land its push after the pause.
        let events = loop_core::decide(&state, command.clone()).map_or(1, |events| events.len());
        let version = Version(at.0 + events.max(1) as u64);
        let taken = match &repo {
            Ok(repo) => take(journal, repo, &url, run_id, version, what).await?,
            Err(error) => Taken::Unavailable(error.to_string()),
        };
        if let Taken::Unavailable(why) = &taken {
            tracing::warn!(%run_id, %why, "cannot take the run's fence on the remote before recording the {what}");
        }
        match journal.execute_at(run_id, vec![command.clone()], at).await {
            Ok(_) => return Ok(()),
            // The run moved on meanwhile: take the fence for the version it is at now.
            Err(RuntimeError::Fenced { .. }) => journal.forget(run_id),
            Err(error) => return Err(error),
        }
    }
    tracing::warn!(%run_id, "the run kept moving for {RELEASE_BUDGET:?}; recording the {what} without its entry on the run's fence");
    journal.execute(run_id, vec![command]).await.map(drop)
}

/// How long a pause or a cancel keeps trying to be appended at the version its fence entry
/// names, while the run moves on under it, before it is recorded all the same.
const RELEASE_BUDGET: Duration = Duration::from_secs(20);

/// The URL of a run by URL.
fn remote_of(state: &RunState) -> Option<String> {
    state
        .created()
        .and_then(|created| crate::repos::url_of(&created.workspace_root))
        .map(str::to_owned)
}
