//! A run in experiment mode (`specs/experiment.md`): the loop asks
//! [`loop_core::experiment::next`] instead of [`loop_core::progress::next`], and performs what it
//! says — the agent's change, review and checks as in any run, the measurements
//! ([`super::measure`]), the decision recorded before the branch moves, and the moves
//! themselves: a discarded candidate kept under its ref, the run branch back at the best.
//!
//! The branch is moved only to the commit the log names as the best, and again whenever it
//! stands elsewhere before an iteration or at the end (a crash between a discard and its move),
//! so the log stays the truth of where the branch should be.

use loop_core::config::experiment::ExperimentConfig;
use loop_core::event::{Decision, ExitReason};
use loop_core::experiment::prompt::{ExperimentInputs, experiment_prompt};
use loop_core::experiment::{Next, Verdict, next};
use loop_core::projection::ExperimentTable;
use loop_core::{Command, progress};

use super::account_gate::AccountGate;
use super::{Driver, DriverEnd, StepEnd};
use crate::error::RuntimeError;
use crate::git;

impl Driver {
    /// The experiment's loop, after [`Driver::begin`].
    pub(super) async fn run_experiment(
        &mut self,
        settings: ExperimentConfig,
    ) -> Result<DriverEnd, RuntimeError> {
        loop {
            if self.cancel.is_cancelled() || !self.wait_out_usage_limit().await {
                return Ok(DriverEnd::Stopped);
            }
            let next = next(
                &self.progress,
                &self.experiment,
                &self.run.config,
                &settings,
            );
            // Agent calls wait for their account as in any run.
            let call = match &next {
                Next::Implement { iteration, attempt } => Some(progress::Next::Implement {
                    iteration: *iteration,
                    attempt: *attempt,
                }),
                Next::Review { iteration } => Some(progress::Next::Review {
                    iteration: *iteration,
                }),
                _ => None,
            };
            if let Some(call) = call {
                match self.wait_for_account(&call).await? {
                    AccountGate::Go => {}
                    AccountGate::Again => continue,
                    AccountGate::End(end) => return Ok(end),
                }
            }
            let end = match next {
                Next::MeasureBaseline { iteration, attempt } => {
                    self.measure_baseline(iteration, attempt, &settings).await?
                }
                Next::Implement { iteration, attempt } => {
                    if attempt == 1 {
                        self.return_to_best().await?;
                    }
                    let prompt = experiment_prompt(&ExperimentInputs {
                        spec_path: &self.run.created.spec_path,
                        template: self.run.created.prompt_template.as_deref(),
                        context_files: &self.run.config.context_files,
                        settings: &settings,
                        experiment: &self.experiment,
                        iteration,
                    });
                    self.implement_with(iteration, attempt, prompt).await?
                }
                Next::Review { iteration } => self.review(iteration, None).await?,
                Next::Verify { iteration } => self.verify(iteration).await?,
                Next::Measure {
                    iteration,
                    attempt,
                    candidate,
                    best,
                } => {
                    self.measure_trial(iteration, attempt, &candidate, &best, &settings)
                        .await?
                }
                Next::Decide(verdict) => self.decide_experiment(verdict).await?,
                Next::Finish {
                    iteration,
                    exit_reason,
                    reason,
                } => Some(
                    self.finish_experiment(iteration, exit_reason, reason)
                        .await?,
                ),
                Next::Fail {
                    exit_reason,
                    reason,
                    cause,
                } => Some(self.fail(exit_reason, reason, Some(cause)).await?),
            };
            self.push_run_branch().await?;
            let Some(end) = end else {
                // (The end pushed them before the run settled.)
                self.push_kept_refs().await?;
                continue;
            };
            return Ok(end);
        }
    }

    /// Records the verdict, then carries out a discard: the candidate kept under its ref, the
    /// run branch back at the best.
    async fn decide_experiment(&mut self, verdict: Verdict) -> StepEnd {
        let idea = match &verdict.commit {
            Some(commit) => git::run(&self.run.workdir, &["log", "-1", "--format=%s", commit])
                .await
                .ok()
                .filter(|subject| !subject.is_empty()),
            None => None,
        };
        let decided = verdict.decided(self.run.run_id, idea);
        self.record(vec![Command::DecideExperiment(decided)])
            .await?;
        if verdict.decision == Decision::Discarded {
            self.return_to_best().await?;
        }
        self.write_experiments_tsv().await;
        Ok(None)
    }

    /// `experiments.tsv` as the log now has it, kept current while the run goes (the settled
    /// run's projection files write it again). A failure costs only a stale file.
    async fn write_experiments_tsv(&self) {
        let Ok(records) = self.services.journal.read_run(self.run.run_id).await else {
            return;
        };
        if let Some(table) = ExperimentTable::fold(&records)
            && let Err(error) = self
                .run
                .files
                .write_projection("experiments.tsv", &table.to_tsv())
        {
            tracing::warn!(%error, "cannot write experiments.tsv");
        }
    }

    /// Makes the log's word on the branch true: every discarded candidate's ref points at it,
    /// and the run branch stands at the best commit. Does nothing when both already hold, so it
    /// is safe to call after any crash.
    async fn return_to_best(&mut self) -> Result<(), RuntimeError> {
        let Some(best) = self
            .experiment
            .best
            .as_ref()
            .map(|best| best.commit.clone())
        else {
            return Ok(());
        };
        let workdir = self.run.workdir.clone();
        // The latest discard is the only one a crash can have cut before its ref was made.
        if let Some(trial) = self.experiment.trials.last()
            && let (Some(commit), Some(kept_ref)) = (&trial.commit, &trial.kept_ref)
        {
            git::run(&workdir, &["update-ref", kept_ref, commit])
                .await
                .map_err(|error| git_failed("keep the discarded candidate", error))?;
        }
        if git::head(&workdir).await.as_deref() == Some(best.as_str()) {
            return Ok(());
        }
        // Uncommitted leftovers of a discarded idea go with it (untracked files stay: they are
        // never measured, each measurement checks out a commit of its own).
        git::run(&workdir, &["reset", "--hard", "--quiet", &best])
            .await
            .map_err(|error| git_failed("return the run branch to the best commit", error))?;
        tracing::info!(run_id = %self.run.run_id, %best, "the run branch is back at the best commit");
        Ok(())
    }

    /// The end: the run branch at the best, the merge when configured, COMPLETED.
    async fn finish_experiment(
        &mut self,
        iteration: u32,
        exit_reason: ExitReason,
        reason: String,
    ) -> Result<DriverEnd, RuntimeError> {
        self.return_to_best().await?;
        self.push_run_branch().await?;
        self.push_kept_refs().await?;
        tracing::info!(run_id = %self.run.run_id, %reason, "the experiment is over");
        self.complete_as(iteration, exit_reason).await
    }
}

fn git_failed(what: &str, error: git::GitError) -> RuntimeError {
    RuntimeError::Io {
        what: format!("git: {what}"),
        source: std::io::Error::other(error.to_string()),
    }
}
