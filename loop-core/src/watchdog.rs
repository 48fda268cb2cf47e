//! Watchdog signals: signs that a loop is stuck, read from what the iterations produced.
//!
//! Each detector is a pure function of the evidence; the runtime records a `WATCHDOG_SIGNAL`
//! for each signal, rewrites the prompt up to `max_watchdog_rewrites` times, then fails the run.
//! The evidence is what the log keeps: digests of answers, and how many iterations in a row
//! moved nothing (folded in [`crate::progress::LoopProgress`]).

use crate::completion::Completion;

pub use crate::event::{Signal, Signals};

impl Signal {
    /// Every signal this build detects, in the order a diagnosis lists them.
    pub const ALL: [Signal; 4] = [
        Signal::RepeatedOutput,
        Signal::NoProgress,
        Signal::MalformedToken,
        Signal::Stalled,
    ];

    /// What the next prompts tell the agent about this signal (a newer build's signal, which
    /// this build cannot explain, says only that the loop is not moving).
    fn told(&self) -> &'static str {
        match self {
            Signal::RepeatedOutput => {
                "- your answer repeated the previous iteration's word for word"
            }
            Signal::NoProgress => "- your answer said that nothing was done",
            Signal::MalformedToken => {
                "- the completion token was given in a form that does not count"
            }
            Signal::Stalled => {
                "- several iterations passed with no new commit and no change to the plan"
            }
            Signal::Unknown(_) => "- the loop is not moving",
        }
    }
}

/// What the next prompts tell the agent after a rewrite for `signals`.
pub fn diagnosis(signals: &[Signal]) -> String {
    let mut text = String::from(
        "\nThe loop watchdog noticed that recent iterations are not making progress:\n",
    );
    for signal in signals {
        text.push_str(signal.told());
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

/// Implementation iterations in a row without a new commit or a plan change before the loop
/// counts as [`Signal::Stalled`].
pub const STALL_AFTER: u32 = 3;

/// Everything the detectors look at after an implementation step succeeded.
#[derive(Clone, Copy, Debug)]
pub struct Evidence<'a> {
    pub answer: &'a str,
    /// The digest of this answer and of the previous iteration's, over [`normalized`] text
    /// (the log keeps digests, not answers).
    pub answer_digest: &'a str,
    pub previous_digest: Option<&'a str>,
    pub completion: &'a Completion,
    /// Iterations in a row, this one included, that left no new commit and no plan change.
    pub idle_iterations: u32,
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

/// Every signal the evidence shows, with a word on each, in a fixed order.
pub fn signals(evidence: &Evidence<'_>) -> Vec<(Signal, String)> {
    let mut found = Vec::new();
    if !normalized(evidence.answer).is_empty()
        && evidence.previous_digest == Some(evidence.answer_digest)
    {
        found.push((
            Signal::RepeatedOutput,
            "same answer as the previous iteration".to_owned(),
        ));
    }
    if says_no_progress(evidence.answer) {
        found.push((
            Signal::NoProgress,
            "the answer says nothing was done".to_owned(),
        ));
    }
    if let Completion::Malformed(why) = evidence.completion {
        found.push((Signal::MalformedToken, why.clone()));
    }
    if evidence.idle_iterations >= STALL_AFTER {
        found.push((
            Signal::Stalled,
            format!(
                "{} iterations without a commit or plan change",
                evidence.idle_iterations
            ),
        ));
    }
    found
}

/// The answer with whitespace runs collapsed: what its digest is taken of, so a reflowed
/// repeat still counts as one.
pub fn normalized(answer: &str) -> String {
    answer.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn says_no_progress(answer: &str) -> bool {
    let lower = answer.to_lowercase();
    NO_PROGRESS_PHRASES
        .iter()
        .any(|phrase| lower.contains(phrase))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signal_parses_back_from_its_name_and_gets_its_own_diagnosis_line() {
        let unknown = diagnosis(&Signals::parse("looping_forever").0);
        assert!(unknown.contains("- the loop is not moving"), "{unknown}");
        for signal in Signal::ALL {
            assert_eq!(Signal::parse(signal.as_str()), signal);
            let told = diagnosis(std::slice::from_ref(&signal));
            assert!(told.contains(signal.told()), "{told}");
            assert!(!told.contains("- the loop is not moving"), "{told}");
        }
        // As WATCHDOG_REWRITE records several: joined with ','.
        let both = diagnosis(&Signals::parse("stalled,no_progress").0);
        assert!(both.contains(Signal::Stalled.told()) && both.contains(Signal::NoProgress.told()));
        assert_eq!(
            Signal::parse("stalled "),
            Signal::Unknown("stalled ".to_owned())
        );
    }

    fn evidence<'a>(
        answer: &'a str,
        previous: Option<&'a str>,
        completion: &'a Completion,
        idle: u32,
    ) -> Evidence<'a> {
        Evidence {
            answer,
            answer_digest: answer,
            previous_digest: previous,
            completion,
            idle_iterations: idle,
        }
    }

    fn kinds(found: Vec<(Signal, String)>) -> Vec<Signal> {
        found.into_iter().map(|(signal, _)| signal).collect()
    }

    #[test]
    fn each_detector_fires_on_its_evidence_only() {
        let absent = Completion::Absent;
        assert_eq!(
            kinds(signals(&evidence("did task 2", None, &absent, 0))),
            []
        );
        assert_eq!(
            kinds(signals(&evidence(
                "did task 2",
                Some("did task 2"),
                &absent,
                0
            ))),
            [Signal::RepeatedOutput]
        );
        assert_eq!(
            kinds(signals(&evidence("Nothing to do here.", None, &absent, 0))),
            [Signal::NoProgress]
        );
        assert_eq!(
            kinds(signals(&evidence("worked", None, &absent, STALL_AFTER))),
            [Signal::Stalled]
        );
        let malformed = Completion::Malformed("case".to_owned());
        assert_eq!(
            kinds(signals(&evidence("x", None, &malformed, 0))),
            [Signal::MalformedToken]
        );
    }

    #[test]
    fn an_empty_answer_never_counts_as_repeated() {
        let absent = Completion::Absent;
        assert_eq!(kinds(signals(&evidence("  ", Some("  "), &absent, 0))), []);
        assert_eq!(normalized(" did  task\n2 "), "did task 2");
    }
}
