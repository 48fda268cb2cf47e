//! [`ExperimentConfig`]: the keys of `mode=experiment` as types, and the checks that need more
//! than one key (a measurement command to run, enough samples for a test, a sensible
//! confidence), made when the run is created.

use std::time::Duration;

use crate::config::choice::{Goal, RunMode};
use crate::config::{Config, ConfigError};

/// The fewest samples of each side a comparison can be made from: a paired test needs two
/// differences to have any idea of their spread.
pub const MIN_REPEATS: u32 = 2;

/// The confidence a decision may ask for: below one half a "keep" would be more often wrong
/// than right; at 1 nothing is ever kept.
pub const CONFIDENCE_RANGE: std::ops::RangeInclusive<f64> = 0.5..=0.999;

/// How an experiment measures and decides (`specs/experiment.md`).
#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentConfig {
    /// Run by `sh -c` in a checkout of the commit measured.
    pub measure_cmd: String,
    /// The number of a JSON object that decides; `None`: the line's only number.
    pub metric: Option<String>,
    pub goal: Goal,
    /// Samples of each side per comparison (pairs of candidate and best).
    pub repeats: u32,
    /// The smallest relative improvement worth keeping, as a share (0.01 = 1%).
    pub min_effect: f64,
    /// How sure a kept change must be to improve by `min_effect` (one-sided).
    pub confidence: f64,
    /// Stop once the best reaches this.
    pub target: Option<f64>,
    /// Stop after this many decided iterations in a row without a keep.
    pub patience: Option<u32>,
    /// Measure the starting commit again every this many iterations.
    pub baseline_every: Option<u32>,
    /// Per run of `measure_cmd`.
    pub measure_timeout: Option<Duration>,
}

impl ExperimentConfig {
    /// The metric's name as people read it: the JSON key, or `metric`.
    pub fn metric_name(&self) -> &str {
        self.metric.as_deref().unwrap_or("metric")
    }
}

/// Checks the keys of an experiment together; a run in `plan` mode passes whatever they say
/// (they are not used). The error names the key, as a config file's would.
pub fn check(config: &Config, source_name: &str) -> Result<(), ConfigError> {
    let values = config.values();
    let value = |key: &str| values.get(key).map_or("", String::as_str).trim();
    if RunMode::parse(value("mode")) != Some(RunMode::Experiment) {
        return Ok(());
    }
    let error = |key: &str, problem: String| ConfigError {
        source_name: source_name.to_owned(),
        line: 0,
        key: key.to_owned(),
        problem,
    };
    if value("measure_cmd").is_empty() {
        return Err(error(
            "measure_cmd",
            "mode=experiment needs a measure_cmd: the command whose last line is the number"
                .to_owned(),
        ));
    }
    match value("measure_repeats").parse::<u32>() {
        Ok(n) if n >= MIN_REPEATS => {}
        _ => {
            return Err(error(
                "measure_repeats",
                format!(
                    "{:?}: at least {MIN_REPEATS} samples of each side are needed to tell a change \
                     from noise",
                    value("measure_repeats")
                ),
            ));
        }
    }
    match value("confidence").parse::<f64>() {
        Ok(c) if CONFIDENCE_RANGE.contains(&c) => {}
        _ => {
            return Err(error(
                "confidence",
                format!(
                    "{:?} is not between {} and {}",
                    value("confidence"),
                    CONFIDENCE_RANGE.start(),
                    CONFIDENCE_RANGE.end()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn checked(text: &str) -> Result<(), ConfigError> {
        let layer = parse(".loop/config", text).expect("each value is valid alone");
        check(&Config::resolve([&layer]), ".loop/config")
    }

    #[test]
    fn an_experiment_needs_a_command_two_samples_and_a_sensible_confidence() {
        assert_eq!(checked("measure_repeats=1\n"), Ok(()), "plan mode");
        assert_eq!(checked("mode=experiment\nmeasure_cmd=./bench\n"), Ok(()));
        for (text, key) in [
            ("mode=experiment\n", "measure_cmd"),
            (
                "mode=experiment\nmeasure_cmd=./bench\nmeasure_repeats=1\n",
                "measure_repeats",
            ),
            (
                "mode=experiment\nmeasure_cmd=./bench\nconfidence=0.2\n",
                "confidence",
            ),
            (
                "mode=experiment\nmeasure_cmd=./bench\nconfidence=99.99%\n",
                "confidence",
            ),
        ] {
            let error = checked(text).expect_err(text);
            assert_eq!(error.key, key, "{text}");
        }
    }
}
