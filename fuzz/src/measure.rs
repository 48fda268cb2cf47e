//! `measure_output`: what a measurement command printed ([`loop_core::experiment::read_metric`]).

use loop_core::experiment::read_metric;

/// Reads arbitrary text as a measurement's stdout, with no metric named and with one, and
/// checks what came out.
///
/// Reading never panics, and:
/// - a number read is finite;
/// - only the last non-empty line counts: that line alone reads the same, and so does the text
///   with more lines in front of it; `\r\n` line endings read the same;
/// - the number written back (as Rust prints it) reads as itself.
pub fn measure_output(data: &[u8]) -> Option<f64> {
    let text = crate::text(data);
    let read = read_metric(&text, None);
    for metric in [None, Some("seconds")] {
        let outcome = read_metric(&text, metric);
        if let Ok(value) = outcome {
            assert!(value.is_finite(), "{value} read from {text:?}");
            assert_eq!(read_metric(&value.to_string(), metric), Ok(value));
        }
        let last = text.lines().map(str::trim).rfind(|line| !line.is_empty());
        if let Some(last) = last {
            assert_eq!(
                read_metric(last, metric),
                outcome,
                "the last line alone: {text:?}"
            );
            assert_eq!(
                read_metric(&format!("building…\n{text}"), metric),
                outcome,
                "a line in front changes the reading of {text:?}"
            );
        }
        assert_eq!(
            read_metric(&text.replace('\n', "\r\n"), metric),
            outcome,
            "\\r\\n line endings change the reading of {text:?}"
        );
    }
    read.ok()
}
