//! What the loop does after an agent call ends: use the answer, try again after a pause, wait
//! for a usage limit's reset, or fail the run — the one place that decides it.
//!
//! The agent's adapter says how the call ended ([`CallEnd`]); [`after_call`] weighs that against
//! what the step has already tried ([`CallCounters`]) and the run's settings ([`RetryPolicy`]).
//! Two budgets, so that a network blip is not charged to the retries a person set for real
//! failures:
//!
//! - **transient** ends (rate limits, overload, server and network errors) are retried up to
//!   `transient_retries` times, backing off exponentially from `transient_backoff`;
//! - **failed** ends (an error result, a crash) are retried up to `failed_retries` times
//!   (`claude_retries`, 0 by default), backing off from `failed_backoff`.
//!
//! Every pause is capped at [`RetryPolicy::max_backoff`]. A usage limit is not a retry: the
//! call waits for the reset (when `usage_limit_wait`) and is made again, costing no budget. An
//! auth failure fails at once: trying again will not log anyone in.

use std::time::Duration;

use crate::agent_stream::CallEnd;
use crate::event::{ExitReason, RetryBudget, RetryCount};

/// How a step retries its agent calls.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    pub failed_retries: u32,
    pub failed_backoff: Duration,
    pub transient_retries: u32,
    pub transient_backoff: Duration,
    pub max_backoff: Duration,
    pub wait_on_usage_limit: bool,
    /// How the run fails when the agent does ([`ExitReason::ClaudeFailed`] for Claude Code).
    pub fails_as: ExitReason,
}

impl RetryPolicy {
    /// The longest pause between two calls.
    pub const MAX_BACKOFF: Duration = Duration::from_secs(600);
}

/// What a step's calls have used of their budgets so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCounters {
    /// Calls made (the next one is `calls + 1`).
    pub calls: u32,
    pub transient: u32,
    pub failed: u32,
}

/// What to do after a call.
#[derive(Clone, Debug, PartialEq)]
pub enum AfterCall {
    /// The answer stands.
    Done,
    /// Call again after `delay`, spending a retry of `budget`: the `count.n`th of the
    /// `count.of` it allows.
    Retry {
        delay: Duration,
        reason: String,
        budget: RetryBudget,
        count: RetryCount,
    },
    /// Call again at `until_ms` (a usage limit's reset).
    Wait { until_ms: i64, reason: String },
    /// The step fails, and with it the run.
    Fail {
        exit_reason: ExitReason,
        reason: String,
    },
}

/// The decision after a call that ended as `end`; `counters` count it.
pub fn after_call(end: &CallEnd, counters: &mut CallCounters, policy: &RetryPolicy) -> AfterCall {
    counters.calls += 1;
    let fail = |reason: String| AfterCall::Fail {
        exit_reason: policy.fails_as,
        reason,
    };
    match end {
        CallEnd::Success => AfterCall::Done,
        CallEnd::Auth { reason } => fail(reason.clone()),
        CallEnd::UsageLimit {
            until_ms, reason, ..
        } if policy.wait_on_usage_limit => AfterCall::Wait {
            until_ms: *until_ms,
            reason: reason.clone(),
        },
        CallEnd::UsageLimit { reason, .. } => {
            fail(format!("usage limit (usage_limit_wait=false): {reason}"))
        }
        CallEnd::Transient { reason } => {
            counters.transient += 1;
            if counters.transient > policy.transient_retries {
                return fail(format!(
                    "still failing after {} retries (transient_retries): {reason}",
                    policy.transient_retries
                ));
            }
            AfterCall::Retry {
                delay: backoff(
                    policy.transient_backoff,
                    counters.transient,
                    policy.max_backoff,
                ),
                reason: reason.clone(),
                budget: RetryBudget::Transient,
                count: RetryCount {
                    n: counters.transient,
                    of: policy.transient_retries,
                },
            }
        }
        CallEnd::Failed { reason } => {
            counters.failed += 1;
            if counters.failed > policy.failed_retries {
                return fail(if policy.failed_retries == 0 {
                    reason.clone()
                } else {
                    format!(
                        "failed {} times (claude_retries={}): {reason}",
                        counters.failed, policy.failed_retries
                    )
                });
            }
            AfterCall::Retry {
                delay: backoff(policy.failed_backoff, counters.failed, policy.max_backoff),
                reason: reason.clone(),
                budget: RetryBudget::Failed,
                count: RetryCount {
                    n: counters.failed,
                    of: policy.failed_retries,
                },
            }
        }
    }
}

/// The `n`th pause (from 1): `first`, doubled each time, at most `max`.
pub fn backoff(first: Duration, n: u32, max: Duration) -> Duration {
    first
        .saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            failed_retries: 1,
            failed_backoff: Duration::from_secs(5),
            transient_retries: 3,
            transient_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(25),
            wait_on_usage_limit: true,
            fails_as: ExitReason::ClaudeFailed,
        }
    }

    fn transient() -> CallEnd {
        CallEnd::Transient {
            reason: "529".to_owned(),
        }
    }

    fn failed() -> CallEnd {
        CallEnd::Failed {
            reason: "boom".to_owned(),
        }
    }

    #[test]
    fn each_end_gets_its_decision() {
        let mut counters = CallCounters::default();
        assert_eq!(
            after_call(&CallEnd::Success, &mut counters, &policy()),
            AfterCall::Done
        );
        let auth = CallEnd::Auth {
            reason: "log in".to_owned(),
        };
        assert!(matches!(
            after_call(&auth, &mut counters, &policy()),
            AfterCall::Fail { exit_reason: ExitReason::ClaudeFailed, reason } if reason == "log in"
        ));
        let limit = CallEnd::UsageLimit {
            until_ms: 42,
            reason: "5-hour limit".to_owned(),
            window: Some("five_hour".to_owned()),
        };
        assert_eq!(
            after_call(&limit, &mut counters, &policy()),
            AfterCall::Wait {
                until_ms: 42,
                reason: "5-hour limit".to_owned()
            }
        );
        let no_wait = RetryPolicy {
            wait_on_usage_limit: false,
            ..policy()
        };
        assert!(matches!(
            after_call(&limit, &mut counters, &no_wait),
            AfterCall::Fail { .. }
        ));
        assert_eq!(
            (counters.calls, counters.transient, counters.failed),
            (4, 0, 0)
        );
    }

    #[test]
    fn transient_ends_have_their_own_budget_and_back_off_to_the_cap() {
        let mut counters = CallCounters::default();
        let delays: Vec<AfterCall> = (0..4)
            .map(|_| after_call(&transient(), &mut counters, &policy()))
            .collect();
        let secs = |d: &AfterCall| match d {
            AfterCall::Retry { delay, .. } => Some(delay.as_secs()),
            _ => None,
        };
        assert_eq!(
            delays.iter().map(secs).collect::<Vec<_>>(),
            [Some(10), Some(20), Some(25), None]
        );
        assert!(
            matches!(&delays[3], AfterCall::Fail { reason, .. } if reason.contains("after 3 retries"))
        );
        // The failed budget is untouched by them.
        assert!(matches!(
            after_call(&failed(), &mut counters, &policy()),
            AfterCall::Retry { .. }
        ));
        assert!(matches!(
            after_call(&failed(), &mut counters, &policy()),
            AfterCall::Fail { reason, .. } if reason.starts_with("failed 2 times (claude_retries=1)")
        ));
    }

    #[test]
    fn with_no_retries_a_failure_fails_with_its_own_reason() {
        let none = RetryPolicy {
            failed_retries: 0,
            ..policy()
        };
        assert_eq!(
            after_call(&failed(), &mut CallCounters::default(), &none),
            AfterCall::Fail {
                exit_reason: ExitReason::ClaudeFailed,
                reason: "boom".to_owned()
            }
        );
    }

    #[test]
    fn backoff_doubles_and_never_overflows() {
        let second = Duration::from_secs(1);
        assert_eq!(backoff(second, 1, Duration::MAX), second);
        assert_eq!(backoff(second, 4, Duration::MAX), Duration::from_secs(8));
        assert_eq!(
            backoff(second, u32::MAX, Duration::from_secs(600)),
            Duration::from_secs(600)
        );
        assert_eq!(backoff(Duration::ZERO, 3, Duration::MAX), Duration::ZERO);
    }
}
