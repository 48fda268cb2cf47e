//! `resume_id`: the resume positions an SSE client sends back ([`loop_core::resume`]).

use loop_core::ids::{Seq, StepId};
use loop_core::resume::{ResumeError, output_resume_id, parse_event_resume, parse_output_resume};

/// What [`resume_id`] made of its input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resumed {
    /// Read as an event stream's position (`Last-Event-ID` or `?after=`).
    pub event: Result<Seq, ResumeError>,
    /// Read as an output stream's position (`<step id>:<byte offset>`).
    pub output: Result<(StepId, u64), ResumeError>,
}

/// Reads arbitrary text as both kinds of resume position and checks what came out.
///
/// Neither parser panics, and:
/// - an event seq read is what its digits say: its `Display` is the input, trimmed, without
///   leading zeros, and reads back as the same seq;
/// - an output position read is written back by `output_resume_id` (what the output stream
///   sends as a frame's `id:`) as text that reads back the same, and its offset is the input's
///   last digits;
/// - an error names the input as it was given (except for an empty one).
pub fn resume_id(data: &[u8]) -> Resumed {
    let text = crate::text(data);
    let event = parse_event_resume(&text);
    let output = parse_output_resume(&text);

    match &event {
        Ok(seq) => {
            let shown = seq.to_string();
            let digits = text.trim().trim_start_matches('0');
            let digits = if digits.is_empty() { "0" } else { digits };
            assert_eq!(shown, digits, "seq {seq} read from {text:?}");
            assert_eq!(
                parse_event_resume(&shown).as_ref(),
                Ok(seq),
                "seq {seq} does not read back"
            );
        }
        Err(error) => check_error(&text, error),
    }

    match &output {
        Ok((step, offset)) => {
            let id = output_resume_id(*step, *offset);
            assert_eq!(id, format!("{step}:{offset}"), "the id is not step:offset");
            assert_eq!(
                parse_output_resume(&id).as_ref(),
                Ok(&(*step, *offset)),
                "{id:?} does not read back"
            );
            let last = text.trim().rsplit(':').next().unwrap_or_default();
            assert_eq!(
                last.parse::<u64>().ok(),
                Some(*offset),
                "offset {offset} read from {text:?}"
            );
        }
        Err(error) => check_error(&text, error),
    }

    Resumed { event, output }
}

fn check_error(text: &str, error: &ResumeError) {
    let message = error.to_string();
    if text.trim().is_empty() {
        assert_eq!(*error, ResumeError::Empty, "a blank text: {message}");
    } else {
        assert!(
            message.contains(&format!("{text:?}")),
            "the error does not quote the input {text:?}: {message}"
        );
    }
}
