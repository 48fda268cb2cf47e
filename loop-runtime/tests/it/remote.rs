//! Runs on a repository named by URL (`repo_url`): a bare repository in a temp dir as the
//! remote, real git, real worktrees. Two runtimes with two data dirs over one log stand for two
//! nodes: what one pushed, the other goes on from.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use loop_core::RunStatus;
use loop_core::config::Layer;
use loop_core::event::{Event, Phase, StepStatus};
use loop_runtime::{RunRequest, Runtime};
use loop_store::SqliteStore;
use loop_testkit::repo::git;

use crate::support::{Scratch, agent, finish, scratch};

/// The scratch repository cloned bare beside it, as the remote; its `file://` URL.
fn remote(scratch: &Scratch) -> (PathBuf, String) {
    let bare = scratch.dir.path().join("remote.git");
    let url = loop_testkit::bare_clone(&scratch.repo(), &bare);
    (bare, url)
}

fn runtime_at(scratch: &Scratch, data_dir: &Path) -> Runtime {
    let store = Arc::new(SqliteStore::open(scratch.db()).expect("open log"));
    Runtime::builder()
        .store(store)
        .data_dir(data_dir)
        .build()
        .expect("runtime")
}

fn by_url(url: &str, agent_script: &str, config: &[(&str, &str)]) -> RunRequest {
    let mut layer = Layer::new();
    for (key, value) in [
        ("agent", "command"),
        ("agent_cmd", agent(agent_script).as_str()),
        ("worktree_provider", "git"),
        ("postmortem", "false"),
        ("agent_idle_timeout_sec", "0"),
        ("run_naming_mode", "spec_slug"),
        ("reviewer", "false"),
    ] {
        layer.insert(key.to_owned(), value.to_owned());
    }
    for (key, value) in config {
        layer.insert((*key).to_owned(), (*value).to_owned());
    }
    RunRequest {
        repo_url: Some(url.to_owned()),
        spec_path: "specs/feature.md".to_owned(),
        config: layer,
        ..RunRequest::default()
    }
}

/// The subjects of `branch`'s commits in the bare repository, oldest first.
fn subjects(bare: &Path, branch: &str) -> Vec<String> {
    git(bare, &["log", "--reverse", "--format=%s", branch])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A run by URL records the URL as its workspace, works in a worktree of this node's checkout,
/// pushes its branch, and lands its merge by pushing the target.
#[tokio::test]
async fn a_run_by_url_pushes_its_branch_and_merges_by_pushing() {
    let scratch = scratch(2);
    let (bare, url) = remote(&scratch);
    let data = scratch.data_dir();
    let runtime = runtime_at(&scratch, &data);
    let request = by_url(&url, "one_task.sh", &[("merge_target_branch", "main")]);
    let view = runtime.submit(request).await.expect("submit");
    assert_eq!(
        view.workspace_root, url,
        "the log names the repository by URL"
    );

    let done = finish(&runtime, view.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let branch = done.worktree.run_branch.clone().expect("a run branch");
    let path = PathBuf::from(
        done.worktree
            .worktree_path
            .clone()
            .expect("a worktree path"),
    );
    assert!(
        path.starts_with(data.join("repos")) || path.starts_with(&data),
        "the worktree is this node's: {}",
        path.display()
    );
    let pushed = subjects(&bare, &branch);
    assert_eq!(
        pushed[1..],
        ["task of iteration 1", "task of iteration 2"],
        "the remote has the run's commits: {pushed:?}"
    );
    let main = subjects(&bare, "main");
    assert!(
        main.last().is_some_and(|s| s.starts_with("loop: ")),
        "the merge was pushed to main: {main:?}"
    );
    let merged = git(&bare, &["show", "main:work.txt"]);
    assert_eq!(merged, "work 1\nwork 2");
    // The person's own clone was never touched: a run by URL needs none.
    assert_eq!(git(&scratch.repo(), &["log", "--format=%s"]), "start");
    runtime.shutdown().await;
}

/// Another node goes on from what the first pushed: the first runtime stops after the run's
/// first task; a second one, with a data dir of its own (no checkout, no worktree) and the same
/// log, clones the repository, makes the worktree again from the pushed branch, and finishes.
#[tokio::test]
async fn a_run_by_url_goes_on_from_its_pushed_branch_on_another_node() {
    let scratch = scratch(3);
    let (bare, url) = remote(&scratch);
    let first = runtime_at(&scratch, &scratch.dir.path().join("node-a"));
    // On node a (its worktree is under its data dir) the second implementation call hangs
    // until node a stops: otherwise it could commit and push a second task between the wait
    // below and the shutdown, a race the node-b half of the test would then inherit.
    let held = format!(
        "case \"$PWD\" in */node-a/*) if [ \"$LOOP_PHASE\" = implementation ] && \
         [ \"$LOOP_ITERATION\" -ge 2 ]; then exec sleep 600; fi;; esac; exec {}",
        agent("one_task.sh")
    );
    let view = first
        .submit(by_url(&url, "one_task.sh", &[("agent_cmd", held.as_str())]))
        .await
        .expect("submit");
    let run_id = view.id;
    // Until the first implementation step is done and its commit pushed.
    let mut branch = None;
    for _ in 0..600 {
        let records = first.events(run_id).await.expect("events");
        let finished = records.iter().any(|r| {
            matches!(&r.event, Event::StepFinished(s)
                if s.phase == Phase::Implementation && s.status == StepStatus::Succeeded)
        });
        let view = first.get(run_id).await.expect("view");
        if let Some(name) = view.worktree.run_branch.clone()
            && finished
            && subjects(&bare, &name).len() >= 2
        {
            branch = Some(name);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let branch = branch.expect("the first task pushed within 30 s");
    first.shutdown().await;

    let node_b = scratch.dir.path().join("node-b");
    let second = runtime_at(&scratch, &node_b);
    let done = finish(&second, run_id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let pushed = subjects(&bare, &branch);
    assert_eq!(
        pushed[1..],
        [
            "task of iteration 1",
            "task of iteration 2",
            "task of iteration 3"
        ],
        "one history: node b went on from node a's commit, {pushed:?}"
    );
    assert!(
        node_b.join("repos").is_dir(),
        "node b keeps its own checkout"
    );
    let here = second.get(run_id).await.expect("the run on node b");
    let path = here.worktree.worktree_path.expect("a worktree path");
    assert!(
        path.starts_with(&*node_b.to_string_lossy()),
        "node b shows its own worktree: {path}"
    );
    second.shutdown().await;

    // A third node that never drove the run shows its diff, from the branch on the remote.
    let third = runtime_at(&scratch, &scratch.dir.path().join("node-c"));
    let diff = third.diff(run_id).await.expect("the diff on node c");
    assert_eq!(diff.commits.len(), 3, "{diff:?}");
    assert!(
        diff.files.iter().any(|file| file.path == "work.txt"),
        "{diff:?}"
    );
    third.shutdown().await;
}
