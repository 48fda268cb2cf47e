//! What a person does with a run after (or beside) its loop: postmortems, figures across runs,
//! the review of its changes (diff, comments, a request for changes, merge, scrap, a pull
//! request) and its worktrees. Each is a call into the subsystem that owns it.

use std::time::Duration;

use loop_core::event::ReviewComment;
use loop_core::projection::{CommentView, RunView};
use loop_core::stats::Stats;
use loop_core::{Command, RunId};

use super::Runtime;
use crate::error::RuntimeError;
use crate::postmortem::PostmortemReport;
use crate::review::{GcReport, MergeOutcome, PullRequest, RunDiff, RunWorktree, ScrapOutcome};

impl Runtime {
    /// Starts a postmortem of a finished run now, whatever its `postmortem` key says: records
    /// `POSTMORTEM_START`, then snapshots, prompts and analyses in the background (see
    /// [`Runtime::wait_postmortem`]). `model` overrides the run's review model; `prompt_only`
    /// writes the snapshots and prompts, asks no agent and ends `skipped`.
    ///
    /// Refused (a [`RuntimeError::Domain`]) while the run is not finished or a postmortem of
    /// it is running.
    pub async fn postmortem(
        &self,
        run_id: RunId,
        model: Option<String>,
        prompt_only: bool,
    ) -> Result<PostmortemReport, RuntimeError> {
        self.postmortems
            .on_demand(run_id, model, prompt_only)
            .await?;
        self.postmortem_report(run_id).await
    }

    /// The state of the run's last postmortem and the files of its `analysis/` directory.
    pub async fn postmortem_report(&self, run_id: RunId) -> Result<PostmortemReport, RuntimeError> {
        self.postmortems.report(run_id).await
    }

    /// Waits until the run's postmortem (if one is running) has ended, and returns its report.
    pub async fn wait_postmortem(&self, run_id: RunId) -> Result<PostmortemReport, RuntimeError> {
        // Listen first: the task may end between the look-up and the wait.
        let done = self.postmortems.done();
        let view = self.get(run_id).await?;
        if view.postmortem.as_deref() == Some("running") {
            let mut events = self.subscribe(Some(run_id), view.last_seq);
            loop {
                match events.next().await {
                    Some(Ok(record))
                        if matches!(record.event, loop_core::Event::PostmortemEnd(_)) =>
                    {
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(error),
                    None => return Err(RuntimeError::Shutdown),
                }
            }
        }
        // The end is recorded before the projection files are rewritten: wait for those too.
        self.postmortems.until_finished(run_id, done).await;
        self.postmortem_report(run_id).await
    }

    /// The figures of the runs created in the last `since` (all runs when `None`), of one
    /// workspace root or of all, as of now.
    pub async fn stats(
        &self,
        since: Option<Duration>,
        workspace_root: Option<String>,
    ) -> Result<Stats, RuntimeError> {
        crate::stats::figures(&self.services, since, workspace_root).await
    }

    /// The diff of a run's branch against its base: the commits and, file by file, the
    /// changes. A read: it records nothing.
    pub async fn diff(&self, run_id: RunId) -> Result<RunDiff, RuntimeError> {
        crate::review::diff(&self.services, run_id).await
    }

    /// One commit of the run against its parent (an experiment's candidate, kept or
    /// discarded): refused unless the run's branch or its experiment refs contain it. A read.
    pub async fn commit_diff(&self, run_id: RunId, commit: &str) -> Result<RunDiff, RuntimeError> {
        crate::review::commit_diff(&self.services, run_id, commit).await
    }

    /// Records a person's comment on a line of a finished run's diff (`REVIEW_COMMENT`); it
    /// waits for [`Runtime::request_changes`].
    pub async fn comment(
        &self,
        run_id: RunId,
        comment: ReviewComment,
    ) -> Result<CommentView, RuntimeError> {
        crate::review::comment(&self.services, run_id, comment).await
    }

    /// The run's review comments, in the order they were made.
    pub async fn comments(&self, run_id: RunId) -> Result<Vec<CommentView>, RuntimeError> {
        crate::review::comments(&self.services, run_id).await
    }

    /// Sends a finished run back to work (`CHANGES_REQUESTED`, PENDING): a new implementation
    /// iteration is asked to make the comments made since it last went back (and `body`, words
    /// on the whole change), then reviewed and verified like any other.
    pub async fn request_changes(
        &self,
        run_id: RunId,
        body: Option<String>,
    ) -> Result<RunView, RuntimeError> {
        self.postmortems.yield_to_changes(run_id).await;
        self.services
            .journal
            .execute(run_id, vec![Command::RequestChanges { body }])
            .await?;
        self.scheduler.wake();
        self.get(run_id).await
    }

    /// Merges a COMPLETED run's branch into `target` (default: its `merge_target_branch`)
    /// the safe way: verified in a temporary worktree, then a compare-and-swap of the target.
    /// Records `REVIEW_ACTION {action: merge, detail {commit, target, strategy}}`; a merge that
    /// does not land records `detail {code, conflict, target, strategy}`, leaves the target
    /// where it was and is [`RuntimeError::MergeFailed`].
    pub async fn merge(
        &self,
        run_id: RunId,
        strategy: Option<&str>,
        target: Option<&str>,
    ) -> Result<MergeOutcome, RuntimeError> {
        crate::review::merge(&self.services, run_id, strategy, target).await
    }

    /// Throws a finished run's work away: removes its worktree (recording `WORKTREE_REMOVED`)
    /// and deletes its branch; records `REVIEW_ACTION {action: scrap}`.
    pub async fn scrap(&self, run_id: RunId) -> Result<ScrapOutcome, RuntimeError> {
        crate::review::scrap(&self.services, run_id).await
    }

    /// Pushes a finished run's branch and opens a pull request with `gh`.
    pub async fn create_pr(
        &self,
        run_id: RunId,
        title: Option<&str>,
        body: Option<&str>,
    ) -> Result<PullRequest, RuntimeError> {
        crate::review::create_pr(&self.services, run_id, title, body).await
    }

    /// The runs' worktrees (of one workspace, or of all), with their sizes on disk.
    pub async fn worktrees(
        &self,
        workspace: Option<&std::path::Path>,
    ) -> Result<Vec<RunWorktree>, RuntimeError> {
        crate::review::worktrees(&self.services, workspace).await
    }

    /// Removes the worktrees of finished runs (COMPLETED, FAILED, CANCELED) of one workspace or
    /// of all, older than `older_than` when given; `dry_run` removes nothing.
    pub async fn gc(
        &self,
        workspace: Option<&std::path::Path>,
        dry_run: bool,
        older_than: Option<Duration>,
    ) -> Result<GcReport, RuntimeError> {
        crate::review::gc(&self.services, workspace, dry_run, older_than).await
    }

    /// Removes one run worktree by path; refused while its run is not finished unless
    /// `force`.
    pub async fn remove_worktree(
        &self,
        path: &std::path::Path,
        force: bool,
    ) -> Result<RunWorktree, RuntimeError> {
        crate::review::remove_worktree(&self.services, path, force).await
    }
}
