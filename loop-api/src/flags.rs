//! [`RunFlags`]: the run flags of `loopctl run` and `loopctl exec`, and the same fields of
//! `POST /runs`, declared once. Each is a shorthand for a configuration key; [`RunFlags::layer`]
//! turns the ones given into the highest configuration layer of the run.
//!
//! A new flag is a field here and its line in [`RunFlags::layer`]: `loopctl` takes it as
//! `--kebab-case` (with the `clap` feature), `POST /runs` as a `snake_case` field, the OpenAPI
//! document lists it (with the `openapi` feature), and the runtime sees its key.

use loop_core::config::{self, ConfigError, Layer};
#[cfg(feature = "clap")]
use loop_core::config::{Goal, MergeStrategy, NamingMode, RunMode};
use serde::{Deserialize, Serialize};

/// The run flags.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunFlags {
    /// How the run is named: `haiku` (a short agent call) or `spec_slug` (run_naming_mode).
    // `--name-source` is the contract's spelling (`contract.md` §1) and stays; the config key's
    // spelling, `--run-naming-mode`, is a visible alias so both are found in --help.
    #[cfg_attr(feature = "clap", arg(
        long = "name-source",
        visible_alias = "run-naming-mode",
        value_name = "MODE",
        value_parser = clap::builder::PossibleValuesParser::new(NamingMode::NAMES),
    ))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_source: Option<String>,
    /// The model for implementation (model).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Implementation iterations before the run gives up (iterations).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u32>,
    /// A verification command, run whole with `sh -c`; repeatable (verify_cmds).
    #[cfg_attr(feature = "clap", arg(long = "verify-cmd", value_name = "CMD"))]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verify_cmds: Vec<String>,
    /// The agent adapter: claude, codex or command (agent).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// For `--agent command`: a shell command that gets the prompt on stdin and in
    /// $LOOP_PROMPT_FILE (agent_cmd). It does not choose the adapter: pass --agent command too,
    /// or set agent=command in the config.
    #[cfg_attr(feature = "clap", arg(long, value_name = "CMD"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_cmd: Option<String>,
    /// The branch the run starts from; default: the checkout's (base_branch).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_branch: Option<String>,
    /// The run branch is this prefix and the run's name (run_branch_prefix).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_branch_prefix: Option<String>,
    /// Merge the finished run into this branch (merge_target_branch).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_target: Option<String>,
    /// How to merge: none, merge or squash (merge_strategy).
    #[cfg_attr(feature = "clap", arg(long, value_parser = clap::builder::PossibleValuesParser::new(MergeStrategy::NAMES)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_strategy: Option<String>,
    /// Where the run's worktree goes, a template (worktree_path_template).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worktree_path_template: Option<String>,
    /// auto, worktrunk or git (worktree_provider).
    #[cfg_attr(feature = "clap", arg(long, value_parser = ["auto", "worktrunk", "git"]))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worktree_provider: Option<String>,
    /// The Worktrunk binary (worktrunk_bin).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worktrunk_bin: Option<String>,
    /// The Worktrunk config file (worktrunk_config_path).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worktrunk_config: Option<String>,
    /// Copy ignored files into a new Worktrunk worktree (worktrunk_copy_ignored).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(skip_serializing_if = "is_false")]
    pub worktrunk_copy_ignored: bool,
    /// Stop the run once its agent calls have cost this many dollars (max_cost_usd).
    #[cfg_attr(feature = "clap", arg(long, value_name = "USD"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cost: Option<f64>,
    /// Work in the workspace itself instead of a worktree (worktree_provider=none).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(skip_serializing_if = "is_false")]
    pub no_worktree: bool,
    /// What the run is for: plan (its tasks) or experiment (a measured number) (mode).
    #[cfg_attr(feature = "clap", arg(long, value_parser = clap::builder::PossibleValuesParser::new(RunMode::NAMES)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The experiment's measurement: its last stdout line is a number or a JSON object of
    /// numbers (measure_cmd).
    #[cfg_attr(feature = "clap", arg(long, value_name = "CMD"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measure_cmd: Option<String>,
    /// Which number of the measurement's JSON object decides (metric).
    #[cfg_attr(feature = "clap", arg(long, value_name = "NAME"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// minimize or maximize the metric (goal).
    #[cfg_attr(feature = "clap", arg(long, value_parser = clap::builder::PossibleValuesParser::new(Goal::NAMES)))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goal: Option<String>,
    /// Samples of the candidate and of the best each, taken alternately (measure_repeats).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measure_repeats: Option<u32>,
    /// The smallest relative change worth keeping, as a share: 0.01 is 1% (min_effect).
    #[cfg_attr(feature = "clap", arg(long, value_name = "SHARE"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_effect: Option<f64>,
    /// How sure a kept change must be, one-sided: 0.95 (confidence).
    #[cfg_attr(feature = "clap", arg(long, value_name = "SHARE"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Stop once the best metric reaches this (target).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "VALUE", allow_negative_numbers = true)
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<f64>,
    /// Stop after this many iterations in a row without a kept change; 0 = never (patience).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patience: Option<u32>,
    /// Measure the starting commit again every this many iterations, to show the machine's
    /// drift; 0 = never (baseline_every).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_every: Option<u32>,
    /// Timeout of one run of the measurement, in seconds; 0 = none (measure_timeout_sec).
    #[cfg_attr(feature = "clap", arg(long, value_name = "SECONDS"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measure_timeout: Option<u32>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl RunFlags {
    /// The flags given, as a configuration layer, each value checked; `source` names where
    /// they came from in errors (`flags`, `request`).
    pub fn layer(&self, source: &str) -> Result<Layer, ConfigError> {
        let text = |value: &Option<String>| value.clone();
        let number = |value: Option<u32>| value.map(|n| n.to_string());
        let yes = |set: bool| set.then(|| "true".to_owned());
        let list = |values: &[String]| (!values.is_empty()).then(|| values.join("\n"));
        let given = [
            ("run_naming_mode", text(&self.name_source)),
            ("model", text(&self.model)),
            ("iterations", number(self.iterations)),
            ("verify_cmds", list(&self.verify_cmds)),
            ("agent", text(&self.agent)),
            ("agent_cmd", text(&self.agent_cmd)),
            ("base_branch", text(&self.base_branch)),
            ("run_branch_prefix", text(&self.run_branch_prefix)),
            ("merge_target_branch", text(&self.merge_target)),
            ("merge_strategy", text(&self.merge_strategy)),
            ("worktree_path_template", text(&self.worktree_path_template)),
            ("worktree_provider", text(&self.worktree_provider)),
            ("worktrunk_bin", text(&self.worktrunk_bin)),
            ("worktrunk_config_path", text(&self.worktrunk_config)),
            ("worktrunk_copy_ignored", yes(self.worktrunk_copy_ignored)),
            ("max_cost_usd", self.max_cost.map(|usd| usd.to_string())),
            (
                "worktree_provider",
                self.no_worktree.then(|| "none".to_owned()),
            ),
            ("mode", text(&self.mode)),
            ("measure_cmd", text(&self.measure_cmd)),
            ("metric", text(&self.metric)),
            ("goal", text(&self.goal)),
            ("measure_repeats", number(self.measure_repeats)),
            ("min_effect", self.min_effect.map(|share| share.to_string())),
            ("confidence", self.confidence.map(|share| share.to_string())),
            ("target", self.target.map(|value| value.to_string())),
            ("patience", number(self.patience)),
            ("baseline_every", number(self.baseline_every)),
            ("measure_timeout_sec", number(self.measure_timeout)),
        ];
        let mut layer = Layer::new();
        for (key, value) in given {
            if let Some(value) = value {
                layer.insert(key.to_owned(), config::check_value(source, key, &value)?);
            }
        }
        Ok(layer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_their_keys_and_bad_values_name_the_key() {
        let flags = RunFlags {
            model: Some("sonnet".to_owned()),
            iterations: Some(7),
            verify_cmds: vec!["cargo test".to_owned(), "false || true".to_owned()],
            merge_target: Some("main".to_owned()),
            max_cost: Some(2.5),
            agent_cmd: Some("./my-agent --fast".to_owned()),
            no_worktree: true,
            ..RunFlags::default()
        };
        let layer = flags.layer("flags").expect("valid");
        assert_eq!(layer["max_cost_usd"], "2.5");
        assert_eq!(layer["model"], "sonnet");
        assert_eq!(layer["iterations"], "7");
        assert_eq!(layer["merge_target_branch"], "main");
        assert_eq!(layer["agent_cmd"], "./my-agent --fast");
        assert!(
            !layer.contains_key("agent"),
            "--agent-cmd implies no adapter"
        );
        assert_eq!(layer["worktree_provider"], "none");
        let config = config::Config::resolve([&layer]).typed();
        assert_eq!(config.verify_cmds, ["cargo test", "false || true"]);
        let bad = RunFlags {
            merge_strategy: Some("rebase".to_owned()),
            ..RunFlags::default()
        };
        let error = bad.layer("request").expect_err("rebase is no strategy");
        assert_eq!(error.key, "merge_strategy");
        assert!(
            RunFlags::default()
                .layer("flags")
                .expect("empty")
                .is_empty()
        );
    }

    #[test]
    fn experiment_flags_become_the_experiment_keys() {
        let flags = RunFlags {
            mode: Some("experiment".to_owned()),
            measure_cmd: Some("python3 bench.py".to_owned()),
            goal: Some("maximize".to_owned()),
            measure_repeats: Some(7),
            min_effect: Some(0.02),
            confidence: Some(0.9),
            target: Some(-2.5),
            patience: Some(4),
            baseline_every: Some(3),
            measure_timeout: Some(90),
            ..RunFlags::default()
        };
        let config = config::Config::resolve([&flags.layer("flags").expect("valid")]).typed();
        let experiment = config.experiment.expect("an experiment");
        assert_eq!(experiment.measure_cmd, "python3 bench.py");
        assert_eq!(experiment.repeats, 7);
        assert_eq!((experiment.min_effect, experiment.confidence), (0.02, 0.9));
        assert_eq!(experiment.target, Some(-2.5));
        assert_eq!(experiment.patience, Some(4));
        assert_eq!(experiment.baseline_every, Some(3));
        assert_eq!(
            experiment.measure_timeout,
            Some(std::time::Duration::from_secs(90))
        );
        let bad = RunFlags {
            min_effect: Some(1.5),
            ..RunFlags::default()
        };
        assert_eq!(bad.layer("request").expect_err("150%").key, "min_effect");
    }
}
