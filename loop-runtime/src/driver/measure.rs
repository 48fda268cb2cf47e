//! An experiment's measurements (`specs/experiment.md`, "The measurement"): `measure_cmd` run
//! by `sh -c` in a fresh detached worktree of each commit measured, its last stdout line read
//! by [`loop_core::experiment::read_metric`]. A trial alternates the candidate and the best
//! (candidate first in even pairs, best first in odd ones) so a drifting machine hits both; a
//! baseline measures the starting commit alone. The figures are recorded with the step's end in
//! one append; a measurement a crash cuts records nothing, and the log's recovery marks its
//! step INTERRUPTED, so it is taken again whole and decided on once.

use loop_core::Command;
use loop_core::config::experiment::ExperimentConfig;
use loop_core::event::{
    ExitReason, ExperimentBaseline, ExperimentMeasured, FailureCause, Phase, StepStatus,
};
use loop_core::experiment::{drift, read_metric, samples};
use loop_core::step::{self, CallReport};

use super::own_steps::OwnStep;
use super::{Driver, DriverEnd, StepEnd};
use crate::error::RuntimeError;
use crate::scratch::Scratch;
use crate::verify;

/// The roles a commit is measured in, as `LOOP_MEASURE_ROLE` tells the command.
const CANDIDATE: &str = "candidate";
const BEST: &str = "best";
const BASELINE: &str = "baseline";

/// Why a measurement gave no figures; the step fails with it.
type Failed = String;

impl Driver {
    /// Measures the starting commit: at iteration 0 the experiment's origin, later its drift.
    pub(super) async fn measure_baseline(
        &mut self,
        iteration: u32,
        attempt: u32,
        settings: &ExperimentConfig,
    ) -> StepEnd {
        let commit = match &self.experiment.baseline {
            Some(first) => first.commit.clone(),
            None => match crate::git::head(&self.run.workdir).await {
                Some(head) => head,
                None => {
                    let reason = "the run's worktree has no commit to measure".to_owned();
                    let cause = Some(FailureCause::Setup);
                    return Ok(Some(self.fail(ExitReason::Failed, reason, cause).await?));
                }
            },
        };
        let mut step = self
            .start_own_step(Phase::Baseline, iteration, attempt)
            .await?;
        let measured = self
            .measure_commits(&mut step, iteration, &[(BASELINE, &commit)], settings)
            .await?;
        let Some(measured) = measured else {
            return Ok(Some(DriverEnd::Stopped));
        };
        let event = measured.map(|mut values| {
            let values = values.remove(0);
            let drift = self
                .experiment
                .baseline
                .as_ref()
                .and_then(|first| drift(&first.values, &values, settings.confidence));
            Command::RecordBaseline(ExperimentBaseline {
                step_id: step.step_id,
                iteration,
                metric: settings.metric_name().to_owned(),
                baseline: samples(&commit, values),
                drift,
            })
        });
        self.end_measurement(step, Phase::Baseline, event).await
    }

    /// Measures the candidate against the best, alternately.
    pub(super) async fn measure_trial(
        &mut self,
        iteration: u32,
        attempt: u32,
        candidate: &str,
        best: &str,
        settings: &ExperimentConfig,
    ) -> StepEnd {
        let mut step = self
            .start_own_step(Phase::Measurement, iteration, attempt)
            .await?;
        let commits = [(CANDIDATE, candidate), (BEST, best)];
        let measured = self
            .measure_commits(&mut step, iteration, &commits, settings)
            .await?;
        let Some(measured) = measured else {
            return Ok(Some(DriverEnd::Stopped));
        };
        let event = measured.map(|mut values| {
            let best_values = values.remove(1);
            let candidate_values = values.remove(0);
            Command::RecordMeasurement(ExperimentMeasured {
                step_id: step.step_id,
                iteration,
                metric: settings.metric_name().to_owned(),
                candidate: samples(candidate, candidate_values),
                best: samples(best, best_values),
            })
        });
        self.end_measurement(step, Phase::Measurement, event).await
    }

    /// Ends a measurement step: its figures and its end in one append, or its failure.
    async fn end_measurement(
        &mut self,
        step: OwnStep,
        phase: Phase,
        event: Result<Command, Failed>,
    ) -> StepEnd {
        let Some((step_id, log_name, output)) = self.close_own_step(step).await? else {
            return Ok(Some(DriverEnd::Stopped));
        };
        let mut commands: Vec<Command> = self
            .run
            .files
            .record("measure_log", &log_name)
            .map_err(super::io_error(&log_name))?
            .into_iter()
            .map(Command::RecordArtifact)
            .collect();
        let observation = self.observe(Some(output), false).await;
        let finished = match event {
            Ok(event) => {
                commands.push(event);
                step::finished(
                    step_id,
                    phase,
                    StepStatus::Succeeded,
                    None,
                    &observation,
                    None,
                )
            }
            Err(why) => step::finished(
                step_id,
                phase,
                StepStatus::Failed,
                Some(format!("measurement_failed: {why}")),
                &observation,
                Some(&CallReport::default()),
            ),
        };
        commands.push(Command::FinishStep(finished));
        self.record(commands).await?;
        Ok(None)
    }

    /// `measure_repeats` rounds over `commits`, each in a fresh worktree of its own; in odd
    /// rounds the order is reversed. The values of each commit in order, why there are none,
    /// or `None` when the run was stopped meanwhile (nothing is recorded then).
    async fn measure_commits(
        &mut self,
        step: &mut OwnStep,
        iteration: u32,
        commits: &[(&str, &str)],
        settings: &ExperimentConfig,
    ) -> Result<Option<Result<Vec<Vec<f64>>, Failed>>, RuntimeError> {
        let mut trees = Vec::new();
        for (role, commit) in commits {
            let name = format!("measure/{}/{role}", self.run.run_id);
            match Scratch::detached(&self.services.data_dir, &name, &self.run.workdir, commit).await
            {
                Ok(tree) => trees.push(tree),
                Err(why) => {
                    for tree in trees {
                        tree.remove().await;
                    }
                    let why = format!("cannot check out {commit} to measure it: {why}");
                    step.output.line(&why);
                    return Ok(Some(Err(why)));
                }
            }
        }
        let outcome = self
            .measure_rounds(step, iteration, commits, &trees, settings)
            .await;
        for tree in trees {
            tree.remove().await;
        }
        outcome
    }

    async fn measure_rounds(
        &mut self,
        step: &mut OwnStep,
        iteration: u32,
        commits: &[(&str, &str)],
        trees: &[Scratch],
        settings: &ExperimentConfig,
    ) -> Result<Option<Result<Vec<Vec<f64>>, Failed>>, RuntimeError> {
        let mut values = vec![Vec::new(); commits.len()];
        let phase = if commits[0].0 == BASELINE {
            Phase::Baseline
        } else {
            Phase::Measurement
        };
        for round in 0..settings.repeats {
            let mut order: Vec<usize> = (0..commits.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for index in order {
                let (role, commit) = commits[index];
                let mut env = self.run.env(iteration, phase.as_str());
                env.push(("LOOP_MEASURE_COMMIT".to_owned(), commit.to_owned()));
                env.push(("LOOP_MEASURE_ROLE".to_owned(), role.to_owned()));
                step.output.line(&format!(
                    "# round {} of {}: {role} {commit}",
                    round + 1,
                    settings.repeats
                ));
                let run = verify::run_command(
                    &settings.measure_cmd,
                    trees[index].path(),
                    &env,
                    settings.measure_timeout,
                    &mut step.output,
                    &self.cancel,
                )
                .await
                .map_err(super::io_error("the measurement command"))?;
                if self.cancel.is_cancelled() {
                    return Ok(None);
                }
                if !run.passed() {
                    let how = match run.exit_code {
                        Some(code) => format!("exit {code}"),
                        None => "timed out or killed".to_owned(),
                    };
                    return Ok(Some(Err(format!(
                        "measure_cmd failed on the {role} {commit} ({how})"
                    ))));
                }
                let text = run.last_stdout.unwrap_or_default();
                match read_metric(&text, settings.metric.as_deref()) {
                    Ok(value) => {
                        step.output.line(&format!("# {role}: {value}"));
                        values[index].push(value);
                    }
                    Err(error) => {
                        return Ok(Some(Err(format!(
                            "the {role} {commit} gave no number: {error}"
                        ))));
                    }
                }
            }
        }
        Ok(Some(Ok(values)))
    }
}
