//! How an iteration ends the loop or turns it: completion (with the merge on completion), a
//! rejected claim, the watchdog's prompt rewrite, and failure.

use loop_core::event::{
    CompletionRejected, ExitReason, FailureCause, MergeFinished, RunCompleted, Signal, Signals,
    WatchdogRewrite,
};
use loop_core::{Command, watchdog};

use super::{Driver, DriverEnd, StepEnd};
use crate::error::RuntimeError;

impl Driver {
    /// Merges when a target is set, then completes. A merge that does not land leaves the run
    /// COMPLETED all the same (its work is done and verified), with the merge recorded as not
    /// landed; `loopctl merge` tries it again at any time.
    pub(super) async fn complete(&mut self, iteration: u32) -> Result<DriverEnd, RuntimeError> {
        self.complete_as(iteration, ExitReason::CompletePlan).await
    }

    /// [`Driver::complete`] with the exit reason the decision gave (an experiment ends
    /// COMPLETED at its target, its patience, its iterations or its budget).
    pub(super) async fn complete_as(
        &mut self,
        iteration: u32,
        exit_reason: ExitReason,
    ) -> Result<DriverEnd, RuntimeError> {
        let worktree = self
            .run
            .worktree
            .clone()
            .filter(|worktree| worktree.provider.has_worktree());
        let merge = self
            .run
            .config
            .merge_on_completion()
            .map(|(target, strategy)| (target.to_owned(), strategy));
        let mut commands = Vec::new();
        if let (Some(worktree), Some((target, strategy))) = (worktree, merge) {
            let finished = |commit, conflict| {
                Command::Merge(MergeFinished {
                    strategy: strategy.as_str().to_owned(),
                    commit,
                    conflict,
                })
            };
            match self
                .merge_step(iteration, &worktree, &target, strategy)
                .await?
            {
                None => return Ok(DriverEnd::Stopped),
                Some(Ok(commit)) => commands.push(finished(Some(commit), None)),
                Some(Err(failure)) => commands.push(finished(
                    None,
                    Some(format!("{}: {}", failure.code, failure.detail)),
                )),
            }
        }
        commands.push(Command::Complete(RunCompleted {
            exit_reason,
            completed_iteration: iteration,
        }));
        self.record(commands).await?;
        Ok(DriverEnd::Settled)
    }

    pub(super) async fn reject(&mut self, iteration: u32, reason: String) -> StepEnd {
        let rejected = CompletionRejected { iteration, reason };
        self.record(vec![Command::RejectCompletion(rejected)])
            .await?;
        Ok(None)
    }

    /// The watchdog's rewrite: the prompt with a diagnosis of `signals` appended, kept as
    /// `prompt.rewrite.N.txt` and used by the next iterations.
    pub(super) async fn rewrite_prompt(&mut self, signals: Vec<Signal>) -> StepEnd {
        let n = self.progress.watchdog_rewrites + 1;
        let before = self.run.files.path("prompt.txt");
        let previous = tokio::fs::read_to_string(&before).await.unwrap_or_default();
        let name = format!("prompt.rewrite.{n}.txt");
        let after = format!("{previous}{}", watchdog::diagnosis(&signals));
        let mut commands: Vec<Command> = self
            .write_file("prompt_rewrite", &name, after.as_bytes())
            .await?
            .into_iter()
            .map(Command::RecordArtifact)
            .collect();
        commands.push(Command::RewritePrompt(WatchdogRewrite {
            signal: Signals(signals),
            prompt_before: before.to_string_lossy().into_owned(),
            prompt_after: self.run.files.path(&name).to_string_lossy().into_owned(),
        }));
        self.record(commands).await?;
        Ok(None)
    }

    pub(super) async fn fail(
        &mut self,
        exit_reason: ExitReason,
        reason: String,
        cause: Option<FailureCause>,
    ) -> Result<DriverEnd, RuntimeError> {
        let at_ms = self.now();
        self.record(vec![Command::Fail {
            exit_reason,
            reason,
            cause,
            at_ms,
        }])
        .await?;
        Ok(DriverEnd::Settled)
    }
}
