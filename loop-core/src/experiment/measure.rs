//! What a measurement printed: the last non-empty line of `measure_cmd`'s standard output is
//! the number, or a JSON object of named numbers of which `metric` picks one. Everything before
//! that line is the command's own business (build output, progress), so a benchmark harness can
//! print what it likes as long as it ends with the figure.

use thiserror::Error;

/// Why a measurement's output gave no number.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MetricError {
    #[error("the command printed nothing on stdout; its last line must be the number")]
    NoOutput,
    #[error("the last line {line:?} is neither a number nor a JSON object of numbers")]
    NotANumber { line: String },
    #[error("{value} is not a finite number")]
    NotFinite { value: String },
    #[error("the JSON object has no number named {name:?} (it has: {})", available.join(", "))]
    NoSuchMetric {
        name: String,
        available: Vec<String>,
    },
    #[error("the JSON object has several numbers ({}): set metric to the one that decides", names.join(", "))]
    WhichMetric { names: Vec<String> },
}

/// The number `stdout` ends with (see the module's header); `metric` names the field of a JSON
/// object. A line longer than a few kilobytes is shown cut in errors.
pub fn read_metric(stdout: &str, metric: Option<&str>) -> Result<f64, MetricError> {
    let line = stdout
        .lines()
        .map(|line| line.trim())
        .rfind(|line| !line.is_empty())
        .ok_or(MetricError::NoOutput)?;
    if line.starts_with('{') {
        return from_object(line, metric);
    }
    let value: f64 = line
        .parse()
        .map_err(|_| MetricError::NotANumber { line: shown(line) })?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(MetricError::NotFinite {
            value: line.to_owned(),
        })
    }
}

fn from_object(line: &str, metric: Option<&str>) -> Result<f64, MetricError> {
    let not_a_number = || MetricError::NotANumber { line: shown(line) };
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(line).map_err(|_| not_a_number())?;
    // serde_json refuses NaN and infinities in its input, so every number here is finite.
    let numbers: Vec<(&String, f64)> = object
        .iter()
        .filter_map(|(name, value)| Some((name, value.as_f64()?)))
        .collect();
    let names = || numbers.iter().map(|(name, _)| (*name).clone()).collect();
    match metric {
        Some(wanted) => numbers
            .iter()
            .find(|(name, _)| name.as_str() == wanted)
            .map(|(_, value)| *value)
            .ok_or_else(|| MetricError::NoSuchMetric {
                name: wanted.to_owned(),
                available: names(),
            }),
        None => match numbers[..] {
            [(_, value)] => Ok(value),
            [] => Err(not_a_number()),
            _ => Err(MetricError::WhichMetric { names: names() }),
        },
    }
}

/// A line as an error shows it: whole when short, else its start.
fn shown(line: &str) -> String {
    const MAX: usize = 200;
    if line.len() <= MAX {
        return line.to_owned();
    }
    let mut end = MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_is_a_number_or_a_json_object() {
        for (stdout, metric, value) in [
            ("compiling…\nwarming up\n1.25\n", None, 1.25),
            ("0.5\r\n\n  \n", None, 0.5),
            ("-3e2", None, -300.0),
            ("7", Some("seconds"), 7.0),
            (r#"{"seconds": 1.5, "runs": 10}"#, Some("seconds"), 1.5),
            (r#"{"loss": 0.25, "note": "ok"}"#, None, 0.25),
        ] {
            assert_eq!(read_metric(stdout, metric), Ok(value), "{stdout:?}");
        }
    }

    #[test]
    fn errors_say_what_the_line_lacks() {
        assert_eq!(read_metric("\n \n", None), Err(MetricError::NoOutput));
        assert_eq!(
            read_metric("1.2\ndone in 3s\n", None),
            Err(MetricError::NotANumber {
                line: "done in 3s".to_owned()
            })
        );
        assert!(matches!(
            read_metric("inf", None),
            Err(MetricError::NotFinite { .. })
        ));
        assert!(matches!(
            read_metric("NaN", None),
            Err(MetricError::NotFinite { .. })
        ));
        assert_eq!(
            read_metric(r#"{"a": 1, "b": 2}"#, None),
            Err(MetricError::WhichMetric {
                names: vec!["a".to_owned(), "b".to_owned()]
            })
        );
        let error = read_metric(r#"{"a": 1, "b": "x"}"#, Some("c")).unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"the JSON object has no number named "c" (it has: a)"#
        );
        assert!(matches!(
            read_metric("{not json", None),
            Err(MetricError::NotANumber { .. })
        ));
        let long = "é".repeat(500);
        let Err(MetricError::NotANumber { line }) = read_metric(&long, None) else {
            panic!("a long line is no number");
        };
        assert!(line.ends_with('…') && line.len() < 210);
    }
}
