//! Completion detection: did the agent say the plan is done, and did it say it properly?
//!
//! The agent ends its answer with [`TOKEN`] when it believes nothing is pending. A token is only
//! a claim: the runtime still checks the plan, the review and a final verification before the
//! run completes.

/// The completion token the default prompts ask for.
pub const TOKEN: &str = "<promise>COMPLETE</promise>";

pub use crate::config::CompletionMode as Mode;

/// What an answer says about completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    /// The token, where the mode wants it.
    Claimed,
    /// No sign of the token.
    Absent,
    /// Something token-like that does not count, and why: worth a watchdog signal, since an
    /// agent that believes it finished will otherwise loop.
    Malformed(String),
}

/// Reads an agent's answer for the completion token.
pub fn detect(answer: &str, mode: Mode) -> Completion {
    let trimmed = answer.trim();
    let last_line = trimmed
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty());
    let claimed = match mode {
        Mode::Exact => trimmed == TOKEN,
        Mode::Trailing => last_line == Some(TOKEN),
    };
    if claimed {
        return Completion::Claimed;
    }
    let lower = answer.to_ascii_lowercase();
    if !lower.contains("<promise>") && !lower.contains("complete</promise>") {
        return Completion::Absent;
    }
    let reason = if lower.contains("<promise>complete</promise>") && !answer.contains(TOKEN) {
        "the token's case is wrong".to_owned()
    } else if !answer.contains(TOKEN) {
        "the token is incomplete or misspelled".to_owned()
    } else if last_line.is_some_and(|line| line != TOKEN && line.contains(TOKEN)) {
        "the token shares its line with other text or markup".to_owned()
    } else if mode == Mode::Exact {
        "completion_mode=exact needs the token alone, with nothing else in the answer".to_owned()
    } else {
        "the token is not on the last line".to_owned()
    };
    Completion::Malformed(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_claims_absences_and_slips() {
        let cases: &[(&str, Mode, Option<&str>)] = &[
            ("<promise>COMPLETE</promise>", Mode::Exact, None),
            ("  <promise>COMPLETE</promise>\n\n", Mode::Exact, None),
            ("done\n<promise>COMPLETE</promise>\n", Mode::Trailing, None),
            (
                "done\n<promise>COMPLETE</promise>\n",
                Mode::Exact,
                Some("alone"),
            ),
            ("all good, task 3 next", Mode::Trailing, Some("")),
            (
                "<promise>COMPLETE</promise>\nmore text",
                Mode::Trailing,
                Some("last line"),
            ),
            (
                "`<promise>COMPLETE</promise>`",
                Mode::Trailing,
                Some("shares its line"),
            ),
            ("<promise>complete</promise>", Mode::Trailing, Some("case")),
            ("<promise>COMPLETE", Mode::Trailing, Some("incomplete")),
        ];
        for (answer, mode, expected) in cases {
            let got = detect(answer, *mode);
            match expected {
                None => assert_eq!(got, Completion::Claimed, "{answer:?}"),
                Some("") => assert_eq!(got, Completion::Absent, "{answer:?}"),
                Some(part) => match got {
                    Completion::Malformed(reason) => {
                        assert!(reason.contains(part), "{answer:?}: {reason}")
                    }
                    other => panic!("{answer:?}: {other:?}"),
                },
            }
        }
    }
}
