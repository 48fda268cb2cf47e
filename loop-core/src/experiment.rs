//! Experiment mode (`mode=experiment`, `specs/experiment.md`): a loop whose goal is a number.
//!
//! Each iteration's change (the candidate) is measured against the best commit so far,
//! alternately, and kept only when it is better beyond the noise. Everything here is pure:
//!
//! - [`measure`] reads the number a measurement printed;
//! - [`stats`] and [`decision`] decide on a candidate from its samples, and show drift;
//! - [`fold`] is where an experiment stands, folded from its events;
//! - [`next`] is what the driver does next in an experiment;
//! - [`prompt`] is what the agent is told: the goal, the best, what was tried.

pub mod decision;
pub mod fold;
pub mod measure;
pub mod next;
pub mod prompt;
pub mod stats;

pub use decision::{Comparison, Rule, compare, drift, samples};
pub use fold::{Best, Experiment};
pub use measure::{MetricError, read_metric};
pub use next::{Next, Verdict, kept_ref, next};

/// A metric's value as people read it: five significant digits at least, no trailing zeros.
pub fn figure(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    if value == 0.0 {
        return "0".to_owned();
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = usize::try_from((4 - magnitude).max(0)).unwrap_or(0);
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// A relative change as a signed percentage: `-3.2%`, `+0.04%`.
pub fn percent(share: f64) -> String {
    let points = share * 100.0;
    if points.abs() < 1.0 && points != 0.0 {
        format!("{points:+.2}%")
    } else {
        format!("{points:+.1}%")
    }
}

/// An interval of relative changes: `[-4.1%, -2.3%]`.
pub fn interval_text(interval: [f64; 2]) -> String {
    format!("[{}, {}]", percent(interval[0]), percent(interval[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_and_percentages_read_well() {
        for (value, text) in [
            (1234.5678, "1234.6"),
            (0.000_123_456, "0.00012346"),
            (2.0, "2"),
            (-0.25, "-0.25"),
            (1e9, "1000000000"),
            (0.0, "0"),
        ] {
            assert_eq!(figure(value), text, "{value}");
        }
        assert_eq!(percent(-0.032), "-3.2%");
        assert_eq!(percent(0.0004), "+0.04%");
        assert_eq!(percent(0.0), "+0.0%");
        assert_eq!(interval_text([-0.041, -0.023]), "[-4.1%, -2.3%]");
    }
}
