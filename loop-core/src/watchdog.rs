//! Watchdog signals: signs that a loop is stuck, read from what the iterations produced.
//!
//! Each detector is a pure function of the evidence; the runtime records a `WATCHDOG_SIGNAL`
//! for each signal, rewrites the prompt up to `max_watchdog_rewrites` times, then fails the run.

use crate::completion::Completion;

/// A kind of evidence that the loop is not moving.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    /// The answer is the same as the previous iteration's.
    RepeatedOutput,
    /// The answer says, in words, that nothing was done.
    NoProgress,
    /// The completion token was given but not in a form that counts.
    MalformedToken,
    /// No new commit and no plan change for several iterations.
    Stalled,
}

impl Signal {
    pub const fn as_str(self) -> &'static str {
        match self {
            Signal::RepeatedOutput => "repeated_output",
            Signal::NoProgress => "no_progress",
            Signal::MalformedToken => "malformed_token",
            Signal::Stalled => "stalled",
        }
    }
}

/// What the next prompts tell the agent after a rewrite for `signals` (comma-separated kinds).
pub fn diagnosis(signals: &str) -> String {
    let mut text = String::from(
        "\nThe loop watchdog noticed that recent iterations are not making progress:\n",
    );
    for signal in signals.split(',').map(str::trim) {
        let line = match signal {
            "repeated_output" => "- your answer repeated the previous iteration's word for word",
            "no_progress" => "- your answer said that nothing was done",
            "malformed_token" => "- the completion token was given in a form that does not count",
            "stalled" => "- several iterations passed with no new commit and no change to the plan",
            _ => "- the loop is not moving",
        };
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(
        "Re-read the plan and pick the first unchecked task. If it cannot be done, mark it \
         `- [~]` with a note saying what is needed and commit. Make one concrete change and \
         commit it before answering. Give the completion token only alone on the last line, and \
         only when no task is pending.\n",
    );
    text
}

/// What one finished iteration left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub new_commit: bool,
    pub plan_changed: bool,
}

/// Everything the detectors look at after an iteration.
#[derive(Clone, Copy, Debug)]
pub struct Evidence<'a> {
    pub previous_answer: Option<&'a str>,
    pub answer: &'a str,
    pub completion: &'a Completion,
    /// Progress of the iterations so far, oldest first, this one last.
    pub history: &'a [Progress],
    /// Iterations without progress before [`Signal::Stalled`] fires; 0 turns it off.
    pub stall_after: usize,
}

/// Phrases with which agents report that they did nothing (compared in lower case).
const NO_PROGRESS_PHRASES: &[&str] = &[
    "no changes were made",
    "no changes made",
    "nothing to do",
    "nothing left to do",
    "no further changes",
    "unable to make progress",
    "i am unable to proceed",
    "i'm unable to proceed",
    "i cannot proceed",
    "i can't proceed",
    "already been completed",
    "already complete",
];

/// Every signal the evidence shows, in a fixed order.
pub fn signals(evidence: &Evidence<'_>) -> Vec<Signal> {
    let mut found = Vec::new();
    if evidence
        .previous_answer
        .is_some_and(|previous| same_answer(previous, evidence.answer))
    {
        found.push(Signal::RepeatedOutput);
    }
    if says_no_progress(evidence.answer) {
        found.push(Signal::NoProgress);
    }
    if matches!(evidence.completion, Completion::Malformed(_)) {
        found.push(Signal::MalformedToken);
    }
    if stalled(evidence.history, evidence.stall_after) {
        found.push(Signal::Stalled);
    }
    found
}

/// Equal once whitespace runs are collapsed; empty answers never count as repeated.
pub fn same_answer(previous: &str, answer: &str) -> bool {
    let normal = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let answer = normal(answer);
    !answer.is_empty() && normal(previous) == answer
}

pub fn says_no_progress(answer: &str) -> bool {
    let lower = answer.to_lowercase();
    NO_PROGRESS_PHRASES
        .iter()
        .any(|phrase| lower.contains(phrase))
}

/// The last `after` iterations all left no commit and no plan change.
pub fn stalled(history: &[Progress], after: usize) -> bool {
    after > 0
        && history.len() >= after
        && history[history.len() - after..]
            .iter()
            .all(|p| !p.new_commit && !p.plan_changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOVED: Progress = Progress {
        new_commit: true,
        plan_changed: true,
    };
    const IDLE: Progress = Progress {
        new_commit: false,
        plan_changed: false,
    };

    #[test]
    fn each_detector_fires_on_its_evidence_only() {
        let absent = Completion::Absent;
        let evidence = |previous, answer, history: &'static [Progress]| Evidence {
            previous_answer: previous,
            answer,
            completion: &absent,
            history,
            stall_after: 2,
        };
        assert_eq!(signals(&evidence(None, "did task 2", &[MOVED])), []);
        assert_eq!(
            signals(&evidence(Some("did  task\n2"), "did task 2", &[MOVED])),
            [Signal::RepeatedOutput]
        );
        assert_eq!(
            signals(&evidence(None, "Nothing to do here.", &[MOVED])),
            [Signal::NoProgress]
        );
        assert_eq!(
            signals(&evidence(None, "worked", &[MOVED, IDLE, IDLE])),
            [Signal::Stalled]
        );
        let malformed = Completion::Malformed("case".to_owned());
        let with_token = Evidence {
            completion: &malformed,
            ..evidence(None, "x", &[])
        };
        assert_eq!(signals(&with_token), [Signal::MalformedToken]);
    }

    #[test]
    fn stall_detection_needs_enough_history_and_can_be_off() {
        assert!(!stalled(&[IDLE], 2));
        assert!(stalled(&[IDLE, IDLE], 2));
        assert!(!stalled(&[IDLE, IDLE], 0));
        assert!(!same_answer("", "  "));
    }
}
