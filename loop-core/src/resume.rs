//! Where a client's stream picks up again: the positions it sends back after a dropped
//! connection, as `Last-Event-ID` or in the query.
//!
//! - The event streams (`/runs/{id}/events`, `/events`) resume after an event seq: the `id:` of
//!   each event frame, a decimal number ([`parse_event_resume`]).
//! - A step's output stream resumes at a byte offset: the `id:` of each output frame is
//!   `<step id>:<byte offset>` ([`parse_output_resume`], written by [`output_resume_id`]).
//!
//! Both accept surrounding whitespace and nothing else loose: digits only (no sign), and an
//! error that says which part is wrong.

use thiserror::Error;

use crate::ids::{Seq, StepId};

/// A resume position that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ResumeError {
    #[error("the resume position is empty")]
    Empty,
    #[error("resume position {text:?} is not an event seq: expected a decimal number")]
    NotASeq { text: String },
    #[error(
        "resume position {text:?} is out of range: an event seq is at most {}",
        u64::MAX
    )]
    SeqOutOfRange { text: String },
    #[error("resume position {text:?} has no byte offset: expected `<step id>:<byte offset>`")]
    NoOffset { text: String },
    #[error("resume position {text:?}: {step:?} is not a step id ({source})")]
    NotAStep {
        text: String,
        step: String,
        source: uuid::Error,
    },
    #[error("resume position {text:?}: {offset:?} is not a byte offset: expected a decimal number")]
    NotAnOffset { text: String, offset: String },
    #[error(
        "resume position {text:?}: byte offset {offset} is out of range (at most {})",
        u64::MAX
    )]
    OffsetOutOfRange { text: String, offset: String },
}

/// An event stream's resume position (`Last-Event-ID` or `?after=`): the seq of the last event
/// the client has, a decimal `u64`. The stream goes on with the events after it.
pub fn parse_event_resume(text: &str) -> Result<Seq, ResumeError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ResumeError::Empty);
    }
    match decimal(trimmed) {
        Decimal::Value(seq) => Ok(Seq(seq)),
        Decimal::NotDigits => Err(ResumeError::NotASeq {
            text: text.to_owned(),
        }),
        Decimal::TooLarge => Err(ResumeError::SeqOutOfRange {
            text: text.to_owned(),
        }),
    }
}

/// An output stream's resume position (`Last-Event-ID`): `<step id>:<byte offset>`, the step and
/// the byte offset in its output the client has read up to.
pub fn parse_output_resume(text: &str) -> Result<(StepId, u64), ResumeError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ResumeError::Empty);
    }
    // The offset follows the last colon: a step id never ends with one, and this also takes the
    // `urn:uuid:` form of a step id.
    let Some((step, offset)) = trimmed.rsplit_once(':') else {
        return Err(ResumeError::NoOffset {
            text: text.to_owned(),
        });
    };
    let step_id: StepId = step.parse().map_err(|source| ResumeError::NotAStep {
        text: text.to_owned(),
        step: step.to_owned(),
        source,
    })?;
    let offset = match decimal(offset) {
        Decimal::Value(offset) => offset,
        Decimal::NotDigits => {
            return Err(ResumeError::NotAnOffset {
                text: text.to_owned(),
                offset: offset.to_owned(),
            });
        }
        Decimal::TooLarge => {
            return Err(ResumeError::OffsetOutOfRange {
                text: text.to_owned(),
                offset: offset.to_owned(),
            });
        }
    };
    Ok((step_id, offset))
}

/// The `id:` of an output frame, read back by [`parse_output_resume`]: `<step id>:<byte offset>`.
pub fn output_resume_id(step_id: StepId, offset: u64) -> String {
    format!("{step_id}:{offset}")
}

enum Decimal {
    Value(u64),
    NotDigits,
    TooLarge,
}

/// ASCII digits only: `u64::from_str` would also take a leading `+`.
fn decimal(text: &str) -> Decimal {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Decimal::NotDigits;
    }
    text.parse().map_or(Decimal::TooLarge, Decimal::Value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

    fn step() -> StepId {
        STEP.parse().unwrap()
    }

    #[test]
    fn an_event_seq_is_a_decimal_number_with_optional_surrounding_whitespace() {
        assert_eq!(parse_event_resume("0"), Ok(Seq(0)));
        assert_eq!(parse_event_resume("42"), Ok(Seq(42)));
        assert_eq!(parse_event_resume(" \t42\r\n"), Ok(Seq(42)));
        assert_eq!(parse_event_resume("007"), Ok(Seq(7)));
        assert_eq!(
            parse_event_resume("18446744073709551615"),
            Ok(Seq(u64::MAX))
        );
    }

    #[test]
    fn a_bad_event_seq_says_what_is_wrong() {
        assert_eq!(parse_event_resume(""), Err(ResumeError::Empty));
        assert_eq!(parse_event_resume("  "), Err(ResumeError::Empty));
        for text in ["+1", "-1", "1.0", "1e3", "0x10", "4 2", "abc", "١٢"] {
            assert_eq!(
                parse_event_resume(text),
                Err(ResumeError::NotASeq {
                    text: text.to_owned()
                }),
                "{text}"
            );
        }
        let error = parse_event_resume("18446744073709551616").unwrap_err();
        assert!(
            matches!(error, ResumeError::SeqOutOfRange { .. }),
            "{error}"
        );
        assert_eq!(
            error.to_string(),
            "resume position \"18446744073709551616\" is out of range: an event seq is at most \
             18446744073709551615"
        );
        assert_eq!(
            parse_event_resume("x").unwrap_err().to_string(),
            "resume position \"x\" is not an event seq: expected a decimal number"
        );
    }

    #[test]
    fn an_output_position_is_a_step_and_an_offset() {
        assert_eq!(parse_output_resume(&format!("{STEP}:0")), Ok((step(), 0)));
        assert_eq!(
            parse_output_resume(&format!("  {STEP}:1234 \r\n")),
            Ok((step(), 1234))
        );
        // Any spelling of the step id that `StepId` reads, including one with colons.
        let simple = STEP.replace('-', "");
        assert_eq!(parse_output_resume(&format!("{simple}:5")), Ok((step(), 5)));
        assert_eq!(
            parse_output_resume(&format!("urn:uuid:{STEP}:5")),
            Ok((step(), 5))
        );
        assert_eq!(
            parse_output_resume(&format!("{STEP}:{}", u64::MAX)),
            Ok((step(), u64::MAX))
        );
    }

    #[test]
    fn a_bad_output_position_names_the_part_that_is_wrong() {
        assert_eq!(parse_output_resume(" "), Err(ResumeError::Empty));
        assert_eq!(
            parse_output_resume(STEP),
            Err(ResumeError::NoOffset {
                text: STEP.to_owned()
            })
        );
        let error = parse_output_resume("not-a-step:12").unwrap_err();
        assert!(
            matches!(&error, ResumeError::NotAStep { step, .. } if step == "not-a-step"),
            "{error}"
        );
        assert!(
            error.to_string().starts_with(
                "resume position \"not-a-step:12\": \"not-a-step\" is not a step id ("
            ),
            "{error}"
        );
        for offset in ["", "+1", "-1", " 1", "1.5", "x"] {
            let text = format!("{STEP}:{offset}");
            assert_eq!(
                parse_output_resume(&text),
                Err(ResumeError::NotAnOffset {
                    text: text.clone(),
                    offset: offset.to_owned()
                }),
                "{text:?}"
            );
        }
        let text = format!("{STEP}:18446744073709551616");
        assert!(matches!(
            parse_output_resume(&text),
            Err(ResumeError::OffsetOutOfRange { .. })
        ));
    }

    #[test]
    fn positions_read_back_what_the_streams_write() {
        for seq in [0, 1, 99, u64::MAX] {
            assert_eq!(parse_event_resume(&Seq(seq).to_string()), Ok(Seq(seq)));
        }
        for offset in [0, 1, 4096, u64::MAX] {
            assert_eq!(
                parse_output_resume(&output_resume_id(step(), offset)),
                Ok((step(), offset))
            );
        }
    }
}
