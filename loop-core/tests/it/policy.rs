//! The end-of-call policy and the watchdog: table cases are in their modules; here, the laws
//! that hold for any sequence of call ends and any settings.

use std::time::Duration;

use loop_core::agent_stream::CallEnd;
use loop_core::completion::Completion;
use loop_core::event::ExitReason;
use loop_core::policy::{AfterCall, CallCounters, RetryPolicy, after_call};
use loop_core::watchdog::{self, Evidence, STALL_AFTER, Signal};
use proptest::prelude::*;

fn end() -> impl Strategy<Value = CallEnd> {
    prop_oneof![
        Just(CallEnd::Success),
        Just(CallEnd::Transient {
            reason: "529".to_owned()
        }),
        Just(CallEnd::Failed {
            reason: "boom".to_owned()
        }),
        Just(CallEnd::Auth {
            reason: "log in".to_owned()
        }),
        (0i64..1_000_000).prop_map(|until_ms| CallEnd::UsageLimit {
            until_ms,
            reason: "limit".to_owned(),
            window: None
        }),
    ]
}

fn policy() -> impl Strategy<Value = RetryPolicy> {
    (
        0u32..4,
        0u64..10,
        0u32..10,
        1u64..30,
        1u64..120,
        any::<bool>(),
    )
        .prop_map(
            |(failed, failed_backoff, transient, transient_backoff, max, wait)| RetryPolicy {
                failed_retries: failed,
                failed_backoff: Duration::from_secs(failed_backoff),
                transient_retries: transient,
                transient_backoff: Duration::from_secs(transient_backoff),
                max_backoff: Duration::from_secs(max),
                wait_on_usage_limit: wait,
                fails_as: ExitReason::ClaudeFailed,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the calls do, the step ends at the first Done or Fail, no pause is over the
    /// cap, a usage limit costs no budget, and no budget is overspent.
    #[test]
    fn a_step_spends_no_more_than_its_budgets(
        ends in proptest::collection::vec(end(), 1..40),
        policy in policy(),
    ) {
        let mut counters = CallCounters::default();
        for (n, end) in ends.iter().enumerate() {
            let before = counters;
            let decision = after_call(end, &mut counters, &policy);
            prop_assert_eq!(counters.calls as usize, n + 1);
            match (&decision, end) {
                (AfterCall::Done, CallEnd::Success) => break,
                (AfterCall::Retry { delay, .. }, _) => {
                    prop_assert!(*delay <= policy.max_backoff);
                    prop_assert!(counters.transient <= policy.transient_retries);
                    prop_assert!(counters.failed <= policy.failed_retries);
                }
                (AfterCall::Wait { until_ms, .. }, CallEnd::UsageLimit { until_ms: given, .. }) => {
                    prop_assert!(policy.wait_on_usage_limit);
                    prop_assert_eq!(until_ms, given);
                    prop_assert_eq!((counters.transient, counters.failed), (before.transient, before.failed));
                }
                (AfterCall::Fail { exit_reason, .. }, _) => {
                    prop_assert_eq!(*exit_reason, policy.fails_as);
                    break;
                }
                (decision, end) => prop_assert!(false, "{end:?} decided {decision:?}"),
            }
        }
    }

    /// An answer that says nothing is never a repeat, and a run idle long enough is stalled.
    #[test]
    fn the_watchdog_reads_only_its_evidence(answer in ".{0,40}", idle in 0u32..8) {
        let digest = watchdog::normalized(&answer);
        let found: Vec<Signal> = watchdog::signals(&Evidence {
            answer: &answer,
            answer_digest: &digest,
            previous_digest: Some(&digest),
            completion: &Completion::Absent,
            idle_iterations: idle,
        })
        .into_iter()
        .map(|(signal, _)| signal)
        .collect();
        prop_assert_eq!(
            found.contains(&Signal::RepeatedOutput),
            !watchdog::normalized(&answer).is_empty()
        );
        prop_assert_eq!(found.contains(&Signal::Stalled), idle >= STALL_AFTER);
    }
}
