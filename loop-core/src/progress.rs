//! The loop's own counters, folded from a run's events, and the pure choice of what comes next.
//!
//! Everything the driver needs to continue a run — the iteration, what the iteration has done,
//! consecutive failures, rewrites, cost — is derived here from the log, so a restarted runtime
//! picks up exactly where the log says, and limits survive a restart. After a retry the limits
//! count afresh.

use crate::config::RunConfig;
use crate::event::{
    ChangesRequested, Event, EventRecord, ExitReason, FailureCause, Phase, Signal, Signals,
    StepStatus,
};

/// What the current iteration has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stage {
    /// No implementation step has succeeded in this iteration yet.
    #[default]
    Implement,
    /// Implementation succeeded; review (or verification) is next.
    Implemented,
    /// Review done; verification is next.
    Reviewed,
    /// Verification done (or skipped); the iteration is ready to be evaluated.
    Verified,
}

/// The loop's state, as the fold of a run's events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoopProgress {
    /// The iteration in progress (1-based; 0 before the first).
    pub iteration: u32,
    pub stage: Stage,
    /// Attempts of each step of this iteration so far (pause and crashes add one).
    pub implementation_attempts: u32,
    pub review_attempts: u32,
    pub verification_attempts: u32,
    pub merge_attempts: u32,
    /// The agent claimed completion in this iteration's implementation answer.
    pub claimed: bool,
    /// The last review of this iteration asked for changes.
    pub review_outstanding: bool,
    /// This iteration's verification passed (true when there is nothing to verify).
    pub verified: bool,
    /// Watchdog signals recorded in this iteration.
    pub signals: Vec<Signal>,
    /// A completion check or a prompt rewrite already happened in this iteration.
    pub completion_checked: bool,
    pub rewritten: bool,
    // Counters since the run started or was last retried.
    pub iterations_run: u32,
    pub consecutive_verification_failures: u32,
    pub consecutive_review_failures: u32,
    pub watchdog_rewrites: u32,
    /// The signals of the last prompt rewrite, which later prompts keep addressing.
    pub rewrite_signal: Option<Signals>,
    pub cost_usd: f64,
    /// The last implementation step's answer digest and HEAD, for the watchdog.
    pub last_answer_sha256: Option<String>,
    pub last_head: Option<String>,
    pub last_plan_sha256: Option<String>,
    /// Implementation iterations in a row with no new commit and no plan change.
    pub idle_iterations: u32,
    /// A usage-limit wait that has not ended, as of the log.
    pub waiting_until_ms: Option<i64>,
    /// The agent session of the implementation step in progress, if the runtime named one.
    pub implementing_session: Option<String>,
    /// The session of an implementation step a crash, a pause or a shutdown interrupted: the
    /// next attempt goes on with it.
    pub resumable_session: Option<String>,
    /// The retries the agent step in progress has spent, its attempts that a crash, a restart
    /// or a pause interrupted included: the next attempt goes on from there rather than with
    /// fresh budgets.
    pub step_retries: crate::policy::CallCounters,
    /// The changes a person last asked for, which the prompts carry until the run completes
    /// again (a retry keeps them: they were not made yet).
    pub requested_changes: Option<ChangesRequested>,
}

impl LoopProgress {
    pub fn fold<'a>(records: impl IntoIterator<Item = &'a EventRecord>) -> LoopProgress {
        let mut progress = LoopProgress::default();
        for record in records {
            progress.apply(record);
        }
        progress
    }

    pub fn apply(&mut self, record: &EventRecord) {
        if let Some(cost) = record.event.paid().and_then(|paid| paid.cost_usd) {
            self.cost_usd = crate::projection::add_cost(self.cost_usd, cost);
        }
        // A step that really ended (not one a crash, a restart or a pause cut short) closes its
        // retry budgets: the next step starts with fresh ones.
        // So does a wait: the step's call went through after it (on another account of a pool,
        // perhaps long before this account's reset).
        if let Event::StepFinished(step) = &record.event
            && !matches!(step.status, StepStatus::Canceled | StepStatus::Interrupted)
        {
            self.step_retries = crate::policy::CallCounters::default();
            self.waiting_until_ms = None;
        }
        match &record.event {
            Event::RunRetried(_) => {
                // Limits count afresh; the iteration number and its attempts go on, so the
                // retried steps write logs of their own next to the earlier attempt's.
                *self = LoopProgress {
                    iteration: self.iteration,
                    implementation_attempts: self.implementation_attempts,
                    review_attempts: self.review_attempts,
                    verification_attempts: self.verification_attempts,
                    merge_attempts: self.merge_attempts,
                    requested_changes: self.requested_changes.take(),
                    ..LoopProgress::default()
                };
            }
            Event::ChangesRequested(requested) => {
                // A new iteration, its limits counted afresh, to make the changes; the
                // iteration numbers go on, so its logs sit beside the earlier ones.
                *self = LoopProgress {
                    iteration: self.iteration + 1,
                    requested_changes: Some(requested.clone()),
                    ..LoopProgress::default()
                };
            }
            Event::RunCompleted(_) => self.requested_changes = None,
            Event::StepStarted(step) if step.phase == Phase::Implementation => {
                if step.iteration != self.iteration {
                    self.iteration = step.iteration;
                    self.stage = Stage::Implement;
                    self.implementation_attempts = 0;
                    self.review_attempts = 0;
                    self.verification_attempts = 0;
                    self.merge_attempts = 0;
                    self.claimed = false;
                    self.review_outstanding = false;
                    self.verified = false;
                    self.signals.clear();
                    self.completion_checked = false;
                    self.rewritten = false;
                }
                self.implementation_attempts += 1;
                self.implementing_session.clone_from(&step.session_id);
                self.resumable_session = None;
            }
            Event::StepStarted(step) => match step.phase {
                Phase::Review => self.review_attempts += 1,
                Phase::Verification => self.verification_attempts += 1,
                Phase::Merge => self.merge_attempts += 1,
                Phase::Implementation | Phase::Watchdog | Phase::Measurement | Phase::Baseline => {}
            },
            Event::StepFinished(step) => match (step.phase, step.status) {
                (Phase::Implementation, StepStatus::Canceled | StepStatus::Interrupted) => {
                    self.resumable_session = self.implementing_session.take();
                }
                (Phase::Implementation, StepStatus::Succeeded) => {
                    self.implementing_session = None;
                    self.stage = Stage::Implemented;
                    self.iterations_run += 1;
                    self.idle_iterations =
                        self.idle_after(step.head_commit.as_deref(), step.plan_sha256.as_deref());
                    self.last_head.clone_from(&step.head_commit);
                    self.last_plan_sha256.clone_from(&step.plan_sha256);
                    self.last_answer_sha256.clone_from(&step.answer_sha256);
                }
                (Phase::Review, status)
                    if status.is_final()
                        && status != StepStatus::Canceled
                        && status != StepStatus::Interrupted =>
                {
                    self.stage = Stage::Reviewed;
                    self.review_outstanding = status != StepStatus::Succeeded;
                    if self.review_outstanding {
                        self.consecutive_review_failures += 1;
                    } else {
                        self.consecutive_review_failures = 0;
                    }
                }
                (Phase::Verification, StepStatus::Succeeded) => {
                    self.stage = Stage::Verified;
                    self.verified = true;
                    self.consecutive_verification_failures = 0;
                }
                (Phase::Verification, StepStatus::Failed) => {
                    self.stage = Stage::Verified;
                    self.verified = false;
                    self.consecutive_verification_failures += 1;
                }
                _ => {}
            },
            Event::CompletionDetected(_) => self.claimed = true,
            Event::CompletionRejected(_) => self.completion_checked = true,
            Event::WatchdogSignal(signal) => self.signals.push(signal.signal.clone()),
            Event::WatchdogRewrite(rewrite) => {
                self.rewritten = true;
                self.watchdog_rewrites += 1;
                self.rewrite_signal = Some(rewrite.signal.clone());
            }
            // A pool run's own wait is waited out by the decision before its next call, which
            // sees a hold end early (a probe answered) as well as at its reset.
            Event::AgentWaiting(wait) if wait.pool_wait.is_none() => {
                self.waiting_until_ms = Some(wait.until_ms);
            }
            Event::AgentRetry(retry) => {
                self.waiting_until_ms = None;
                match retry.budget {
                    Some(crate::event::RetryBudget::Transient) => {
                        self.step_retries.transient += 1;
                    }
                    Some(crate::event::RetryBudget::Failed) => self.step_retries.failed += 1,
                    None => {}
                }
            }
            _ => {}
        }
    }
}

impl LoopProgress {
    /// Iterations in a row that moved nothing, counting an implementation step that left the
    /// working tree at `head` and the plan at `plan_sha256`: 0 when either changed.
    pub fn idle_after(&self, head: Option<&str>, plan_sha256: Option<&str>) -> u32 {
        let moved =
            head != self.last_head.as_deref() || plan_sha256 != self.last_plan_sha256.as_deref();
        if moved { 0 } else { self.idle_iterations + 1 }
    }
}

/// What the driver should do next, given the progress, the configuration and what the driver
/// observed of the plan (`plan_complete`: nothing pending or blocked).
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    Implement {
        iteration: u32,
        attempt: u32,
    },
    Review {
        iteration: u32,
    },
    Verify {
        iteration: u32,
    },
    /// The claim holds: record COMPLETION_DETECTED, merge when configured, complete.
    Complete {
        iteration: u32,
    },
    /// The claim does not hold: record COMPLETION_REJECTED with this reason.
    RejectCompletion {
        iteration: u32,
        reason: String,
    },
    /// Rewrite the prompt because of these signals.
    RewritePrompt {
        signals: Vec<Signal>,
    },
    Fail {
        exit_reason: ExitReason,
        reason: String,
        cause: FailureCause,
    },
}

/// The next thing to do in a RUNNING run with no open step.
pub fn next(progress: &LoopProgress, config: &RunConfig, plan_complete: bool) -> Next {
    if let Some(max_cost) = config.max_cost_usd
        && progress.cost_usd >= max_cost
    {
        return Next::Fail {
            exit_reason: ExitReason::BudgetExhausted,
            reason: format!(
                "agent cost ${:.2} reached max_cost_usd ${max_cost:.2}",
                progress.cost_usd
            ),
            cause: FailureCause::Budget {
                cost_usd: progress.cost_usd,
                max_usd: max_cost,
            },
        };
    }
    let iteration = progress.iteration;
    let has_verification = config.verifies();
    match progress.stage {
        Stage::Implement if iteration == 0 => Next::Implement {
            iteration: 1,
            attempt: 1,
        },
        Stage::Implement => Next::Implement {
            iteration,
            attempt: progress.implementation_attempts + 1,
        },
        Stage::Implemented if config.reviewer => Next::Review { iteration },
        Stage::Implemented | Stage::Reviewed if has_verification => Next::Verify { iteration },
        Stage::Implemented | Stage::Reviewed | Stage::Verified => {
            evaluate(progress, config, plan_complete)
        }
    }
}

/// The end of an iteration: limits, completion, watchdog, or the next iteration.
fn evaluate(progress: &LoopProgress, config: &RunConfig, plan_complete: bool) -> Next {
    let iteration = progress.iteration;
    let verified = progress.verified || !config.verifies();

    if let Some(max_review) = config.max_consecutive_review_failures
        && progress.consecutive_review_failures >= max_review
    {
        return Next::Fail {
            exit_reason: ExitReason::Failed,
            reason: format!(
                "{} reviews in a row asked for changes",
                progress.consecutive_review_failures
            ),
            cause: FailureCause::Review {
                consecutive: progress.consecutive_review_failures,
            },
        };
    }
    if let Some(max_verify) = config.max_consecutive_verification_failures
        && progress.consecutive_verification_failures >= max_verify
    {
        return Next::Fail {
            exit_reason: ExitReason::Failed,
            reason: format!(
                "verification failed {} times in a row",
                progress.consecutive_verification_failures
            ),
            cause: FailureCause::Verification {
                consecutive: progress.consecutive_verification_failures,
            },
        };
    }

    let unfinished = unfinished(progress, plan_complete, verified);
    if progress.claimed && !progress.completion_checked {
        return match unfinished {
            None => Next::Complete { iteration },
            Some(reason) => Next::RejectCompletion {
                iteration,
                reason: reason.to_owned(),
            },
        };
    }

    // The plan is finished, nothing the reviewer asked for is outstanding and the verification
    // passed: there is nothing left for the agent to do, and asking it to say so is paid for.
    if plan_complete && !progress.review_outstanding && verified && progress.iterations_run > 0 {
        return Next::Complete { iteration };
    }

    if !progress.signals.is_empty() && !progress.rewritten {
        if progress.watchdog_rewrites >= config.max_watchdog_rewrites {
            return Next::Fail {
                exit_reason: ExitReason::Failed,
                reason: format!(
                    "watchdog: {} after {} prompt rewrites",
                    progress
                        .signals
                        .iter()
                        .map(Signal::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                    progress.watchdog_rewrites
                ),
                cause: FailureCause::Watchdog {
                    signals: progress.signals.clone(),
                    rewrites: progress.watchdog_rewrites,
                },
            };
        }
        return Next::RewritePrompt {
            signals: progress.signals.clone(),
        };
    }

    if progress.iterations_run >= config.iterations {
        // Say what the log says is missing: a plan whose every task is checked but whose
        // verification fails is not "a plan not completed".
        let ran = match progress.iterations_run {
            1 => "1 iteration ran".to_owned(),
            n => format!("{n} iterations ran"),
        };
        let reason = match unfinished {
            Some(why) if plan_complete => {
                format!("{ran}; every task of the plan is checked, but {why}")
            }
            Some(why) => format!("{ran}; {why}"),
            None => ran,
        };
        return Next::Fail {
            exit_reason: ExitReason::IterationsExhausted,
            reason,
            cause: FailureCause::IterationsExhausted {
                iterations: progress.iterations_run,
            },
        };
    }
    Next::Implement {
        iteration: iteration + 1,
        attempt: 1,
    }
}

/// Why the run is not done, as the log shows it, or `None` when nothing is missing.
fn unfinished(
    progress: &LoopProgress,
    plan_complete: bool,
    verified: bool,
) -> Option<&'static str> {
    if !plan_complete {
        Some("the plan still has pending or blocked tasks")
    } else if progress.review_outstanding {
        Some("the reviewer asked for changes")
    } else if !verified {
        Some("verification did not pass")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> RunConfig {
        let frozen: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        RunConfig::from_frozen(&frozen)
    }

    /// The first iteration, implemented, reviewed and verified as `verified` says.
    fn verified_iteration(verified: bool) -> LoopProgress {
        LoopProgress {
            iteration: 1,
            stage: Stage::Verified,
            verified,
            iterations_run: 1,
            ..LoopProgress::default()
        }
    }

    #[test]
    fn a_finished_and_verified_plan_completes_without_another_agent_call() {
        let config = config(&[("verify_cmds", "cargo test")]);
        assert_eq!(
            next(&verified_iteration(true), &config, true),
            Next::Complete { iteration: 1 }
        );
    }

    #[test]
    fn a_finished_plan_that_fails_verification_or_review_goes_on() {
        let config = config(&[("verify_cmds", "cargo test")]);
        let next_iteration = Next::Implement {
            iteration: 2,
            attempt: 1,
        };
        assert_eq!(
            next(&verified_iteration(false), &config, true),
            next_iteration
        );
        let asked_for_changes = LoopProgress {
            review_outstanding: true,
            ..verified_iteration(true)
        };
        assert_eq!(next(&asked_for_changes, &config, true), next_iteration);
        // Tasks left: the next iteration takes one.
        assert_eq!(
            next(&verified_iteration(true), &config, false),
            next_iteration
        );
    }

    /// Issue 24: a run out of iterations with every task checked and its verification failing
    /// ended "4 iterations ran without completing the plan" beside "4/4 tasks".
    #[test]
    fn running_out_of_iterations_says_what_is_missing() {
        let config = config(&[
            ("verify_cmds", "python3 -m unittest -q"),
            ("iterations", "1"),
            ("max_consecutive_verification_failures", "0"),
        ]);
        let reason =
            |progress: &LoopProgress, plan_complete| match next(progress, &config, plan_complete) {
                Next::Fail {
                    exit_reason: ExitReason::IterationsExhausted,
                    reason,
                    ..
                } => reason,
                other => panic!("{other:?}"),
            };
        assert_eq!(
            reason(&verified_iteration(false), true),
            "1 iteration ran; every task of the plan is checked, but verification did not pass"
        );
        let asked_for_changes = LoopProgress {
            review_outstanding: true,
            ..verified_iteration(true)
        };
        assert_eq!(
            reason(&asked_for_changes, true),
            "1 iteration ran; every task of the plan is checked, but the reviewer asked for \
             changes"
        );
        assert_eq!(
            reason(&verified_iteration(true), false),
            "1 iteration ran; the plan still has pending or blocked tasks"
        );
    }

    #[test]
    fn a_retried_run_goes_on_with_the_next_attempt_and_fresh_limits() {
        let failed = LoopProgress {
            iteration: 3,
            stage: Stage::Implemented,
            implementation_attempts: 1,
            consecutive_verification_failures: 3,
            cost_usd: 4.0,
            ..LoopProgress::default()
        };
        let mut progress = failed;
        progress.apply(&EventRecord {
            seq: crate::ids::Seq(9),
            run_id: crate::ids::RunId::from_parts(1_790_000_000_000, [1; 10]),
            version: crate::ids::Version(9),
            ts_ms: 1_790_000_000_000,
            schema: 1,
            event: Event::RunRetried(crate::event::RunRetried {}),
        });
        assert_eq!(progress.consecutive_verification_failures, 0);
        assert_eq!(progress.cost_usd, 0.0);
        assert_eq!(
            next(&progress, &config(&[]), false),
            Next::Implement {
                iteration: 3,
                attempt: 2
            }
        );
    }
}

#[cfg(test)]
mod retry_budget_tests {
    use serde_json::json;

    use super::*;
    use crate::ids::{RunId, Seq, Version};

    fn fold(events: &[serde_json::Value]) -> LoopProgress {
        let records: Vec<EventRecord> = events
            .iter()
            .enumerate()
            .map(|(i, event)| {
                let mut event = event.clone();
                let kind = event["type"].take();
                EventRecord {
                    seq: Seq(i as u64 + 1),
                    run_id: RunId::from_parts(1, [1; 10]),
                    version: Version(i as u64 + 1),
                    ts_ms: i as i64,
                    schema: crate::event::SCHEMA,
                    event: Event::decode(
                        kind.as_str()
                            .expect("a type")
                            .parse()
                            .expect("a known type"),
                        &event["payload"].to_string(),
                    )
                    .expect("an event"),
                }
            })
            .collect();
        LoopProgress::fold(&records)
    }

    const STEP: &str = "01a21350-1f27-75a5-bc3b-0076ab9d10be";

    fn started() -> serde_json::Value {
        json!({"type": "STEP_STARTED", "payload": {"step_id": STEP, "phase": "implementation", "iteration": 1}})
    }

    fn retry(budget: Option<&str>) -> serde_json::Value {
        json!({"type": "AGENT_RETRY", "payload": {"step_id": STEP, "attempt": 2, "delay_ms": 10, "reason": "529", "budget": budget}})
    }

    fn finished(status: &str) -> serde_json::Value {
        json!({"type": "STEP_FINISHED", "payload": {"step_id": STEP, "phase": "implementation", "status": status}})
    }

    #[test]
    fn an_interrupted_step_s_retries_stay_spent_and_a_finished_one_s_do_not() {
        let spent = fold(&[
            started(),
            retry(Some("transient")),
            retry(Some("transient")),
            retry(Some("failed")),
            retry(None),
            finished("INTERRUPTED"),
            started(),
        ]);
        assert_eq!(
            (spent.step_retries.transient, spent.step_retries.failed),
            (2, 1)
        );
        let fresh = fold(&[started(), retry(Some("transient")), finished("SUCCEEDED")]);
        assert_eq!(fresh.step_retries, crate::policy::CallCounters::default());
    }
}
