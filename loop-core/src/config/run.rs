//! [`RunConfig`]: a run's configuration as types, read once from its frozen key table.
//!
//! The key table ([`crate::config::KEYS`]) stays the one list of keys: it parses and checks
//! config files, writes `loopctl init`'s template and the README's table. A run's values are
//! frozen into `RUN_CREATED` as that table's strings; this is the only place that turns them into
//! types, so code reads `config.verify_timeout` (an `Option<Duration>`), never a string by key.
//! Values were checked when the run was created; a frozen value an older build wrote that does
//! not read takes the key's default.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::choice::{
    AgentName, ArtifactMode, BudgetAction, CompletionMode, Goal, MergeStrategy, NamingMode,
    PermissionMode, PostmortemWhen, RunMode, WorktreeChoice,
};
use crate::config::experiment::ExperimentConfig;
use crate::config::{Config, default_of};

/// A run's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    /// What the run is for: a plan's tasks, or a measured number.
    pub mode: RunMode,
    /// How the experiment measures and decides; `Some` exactly when `mode=experiment`.
    pub experiment: Option<ExperimentConfig>,
    pub specs_dir: String,
    pub plans_dir: String,
    /// Where run directories go, under the workspace (its default when set empty).
    pub log_dir: String,
    /// The global mirror's root; `None`: the daemon's data dir.
    pub global_log_dir: Option<String>,
    pub artifact_mode: ArtifactMode,
    /// The agent adapter's name (`claude`, `codex`, `command`, or one an embedder registered).
    pub agent: AgentName,
    pub agent_cmd: Option<String>,
    pub claude_bin: String,
    pub codex_bin: String,
    /// Claude Code's model (`model`); other agents have their own key.
    pub model: String,
    /// Claude Code's review model: `review_model`, else `model`.
    pub review_model: String,
    /// Codex's model (`codex_model`); `None`: Codex's own default.
    pub codex_model: Option<String>,
    pub iterations: u32,
    pub completion_mode: CompletionMode,
    pub reviewer: bool,
    pub prompt_file: Option<String>,
    pub context_files: Vec<String>,
    pub verify_cmds: Vec<String>,
    pub verify_timeout: Option<Duration>,
    /// Per agent call (`claude_timeout_sec`).
    pub agent_timeout: Option<Duration>,
    /// Stop an agent that prints nothing for this long.
    pub agent_idle_timeout: Option<Duration>,
    /// Retries of a failed agent call (`claude_retries`).
    pub agent_retries: u32,
    /// The first pause between them (`claude_retry_backoff_sec`).
    pub agent_retry_backoff: Duration,
    /// Retries of a call that met a network error, a rate limit, an overload or a server error.
    pub transient_retries: u32,
    /// The first pause between them.
    pub transient_backoff: Duration,
    /// A progress line in the step log after this long without output.
    pub agent_heartbeat: Option<Duration>,
    pub max_consecutive_verification_failures: Option<u32>,
    pub max_consecutive_review_failures: Option<u32>,
    pub max_watchdog_rewrites: u32,
    pub max_cost_usd: Option<f64>,
    pub usage_limit_wait: bool,
    /// The account named (`account`), as the run was created: named, or derived from the agent
    /// and its credentials.
    pub account: Option<String>,
    /// The accounts its calls may go to (`account_pool`), in the order given; empty: `account`
    /// alone.
    pub account_pool: Vec<String>,
    /// The account's spending caps (`account_budget_usd_per_day` / `_per_month`).
    pub account_budget: crate::account::Budget,
    /// At a cap: wait for the next period, or fail the run.
    pub account_budget_action: BudgetAction,
    /// The share of the account's rate-limit window kept free (`account_reserve_pct`, 0 = none).
    pub account_reserve_pct: u32,
    /// The most agent calls of the account at once (`account_concurrency`); its runs take
    /// turns for them.
    pub account_concurrency: Option<u32>,
    /// The run's weight in those turns (`priority`, at least 1).
    pub priority: u32,
    pub naming_mode: NamingMode,
    pub naming_model: String,
    pub base_branch: Option<String>,
    pub run_branch_prefix: String,
    pub merge_target_branch: Option<String>,
    pub merge_strategy: MergeStrategy,
    pub worktree_path_template: String,
    pub worktree_provider: WorktreeChoice,
    pub worktrunk_bin: String,
    pub worktrunk_config_path: Option<String>,
    pub worktrunk_copy_ignored: bool,
    pub worktree_cleanup: bool,
    pub summary_json: bool,
    pub postmortem: PostmortemWhen,
    pub postmortem_model: String,
    pub permission_mode: PermissionMode,
    pub notify_cmd: Option<String>,
    pub notify_webhook: Option<String>,
}

impl Default for RunConfig {
    /// Every key at its default.
    fn default() -> RunConfig {
        RunConfig::of(&Config::resolve([]))
    }
}

impl RunConfig {
    /// The typed configuration of a frozen key table (as `RUN_CREATED` holds it).
    pub fn from_frozen(frozen: &BTreeMap<String, String>) -> RunConfig {
        RunConfig::of(&Config::from_frozen(frozen))
    }

    /// The typed configuration of resolved values.
    pub fn of(config: &Config) -> RunConfig {
        let read = Read(config);
        let mode = read.choice("mode", RunMode::parse);
        RunConfig {
            mode,
            experiment: (mode == RunMode::Experiment).then(|| ExperimentConfig {
                measure_cmd: read.text("measure_cmd"),
                metric: read.optional("metric"),
                goal: read.choice("goal", Goal::parse),
                repeats: read
                    .number::<u32>("measure_repeats")
                    .max(crate::config::experiment::MIN_REPEATS),
                min_effect: read.choice("min_effect", crate::config::fraction),
                confidence: read.choice("confidence", crate::config::fraction),
                target: read
                    .optional("target")
                    .and_then(|target| target.parse().ok())
                    .filter(|target: &f64| target.is_finite()),
                patience: read.limit("patience"),
                baseline_every: read.limit("baseline_every"),
                measure_timeout: read.seconds("measure_timeout_sec"),
            }),
            specs_dir: read.text("specs_dir"),
            plans_dir: read.text("plans_dir"),
            log_dir: read
                .optional("log_dir")
                .unwrap_or_else(|| default_of("log_dir")),
            global_log_dir: read.optional("global_log_dir"),
            artifact_mode: read.choice("artifact_mode", ArtifactMode::parse),
            agent: AgentName::parse(&read.text("agent")),
            agent_cmd: read.optional("agent_cmd"),
            claude_bin: read.text("claude_bin"),
            codex_bin: read.text("codex_bin"),
            model: read.text("model"),
            review_model: read
                .optional("review_model")
                .unwrap_or_else(|| read.text("model")),
            codex_model: read.optional("codex_model"),
            iterations: read.number("iterations"),
            completion_mode: read.choice("completion_mode", CompletionMode::parse),
            reviewer: read.flag("reviewer"),
            prompt_file: read.optional("prompt_file"),
            context_files: read.words("context_files"),
            verify_cmds: verify_commands(&read.text("verify_cmds")),
            verify_timeout: read.seconds("verify_timeout_sec"),
            agent_timeout: read.seconds("claude_timeout_sec"),
            agent_idle_timeout: read.seconds("agent_idle_timeout_sec"),
            agent_retries: read.number("claude_retries"),
            agent_retry_backoff: Duration::from_secs(read.number("claude_retry_backoff_sec")),
            transient_retries: read.number("transient_retries"),
            transient_backoff: Duration::from_secs(read.number("transient_backoff_sec")),
            agent_heartbeat: read.seconds("agent_heartbeat_sec"),
            max_consecutive_verification_failures: read
                .limit("max_consecutive_verification_failures"),
            max_consecutive_review_failures: read.limit("max_consecutive_review_failures"),
            max_watchdog_rewrites: read.number("max_watchdog_rewrites"),
            max_cost_usd: Some(read.amount("max_cost_usd")).filter(|cap| *cap > 0.0),
            usage_limit_wait: read.flag("usage_limit_wait"),
            account: read.optional("account"),
            account_pool: read.words("account_pool"),
            account_budget: crate::account::Budget {
                per_day_usd: Some(read.amount("account_budget_usd_per_day"))
                    .filter(|cap| *cap > 0.0),
                per_month_usd: Some(read.amount("account_budget_usd_per_month"))
                    .filter(|cap| *cap > 0.0),
            },
            account_budget_action: read.choice("account_budget_action", BudgetAction::parse),
            account_reserve_pct: read.number::<u32>("account_reserve_pct").min(100),
            account_concurrency: read.limit("account_concurrency"),
            priority: read.number::<u32>("priority").max(1),
            naming_mode: read.choice("run_naming_mode", NamingMode::parse),
            naming_model: read.text("run_naming_model"),
            base_branch: read.optional("base_branch"),
            run_branch_prefix: read.text("run_branch_prefix"),
            merge_target_branch: read.optional("merge_target_branch"),
            merge_strategy: read.choice("merge_strategy", MergeStrategy::parse),
            worktree_path_template: read.text("worktree_path_template"),
            worktree_provider: read.choice("worktree_provider", WorktreeChoice::parse),
            worktrunk_bin: read.text("worktrunk_bin"),
            worktrunk_config_path: read.optional("worktrunk_config_path"),
            worktrunk_copy_ignored: read.flag("worktrunk_copy_ignored"),
            worktree_cleanup: read.flag("worktree_cleanup"),
            summary_json: read.flag("summary_json"),
            postmortem: read.choice("postmortem", PostmortemWhen::parse),
            postmortem_model: read.text("postmortem_model"),
            permission_mode: read.choice("claude_permission_mode", PermissionMode::parse),
            notify_cmd: read.optional("notify_cmd"),
            notify_webhook: read.optional("notify_webhook"),
        }
    }

    /// The model an agent step of `phase` asks for, as the run's agent takes it: Claude Code's
    /// `model` or `review_model`, Codex's `codex_model` for every step; empty for Codex's own
    /// default and for a command agent, which is given none. (Passing Claude's `opus` to
    /// `codex exec -m` is refused with a 400.)
    pub fn model_for(&self, phase: crate::event::Phase) -> &str {
        match (&self.agent, phase) {
            (AgentName::Codex, _) => self.codex_model.as_deref().unwrap_or(""),
            (AgentName::Command, _) => "",
            (_, crate::event::Phase::Review) => &self.review_model,
            _ => &self.model,
        }
    }

    /// The accounts an agent call of the run may go to, in order: the pool, else the run's
    /// account; empty when the run has neither (logs older than accounts).
    pub fn accounts(&self) -> Vec<String> {
        if !self.account_pool.is_empty() {
            self.account_pool.clone()
        } else {
            self.account.iter().cloned().collect()
        }
    }

    /// Whether the run is an experiment.
    pub fn is_experiment(&self) -> bool {
        self.experiment.is_some()
    }

    /// Whether iterations are verified by commands of the project's own.
    pub fn verifies(&self) -> bool {
        !self.verify_cmds.is_empty()
    }

    /// The merge to make when the run completes: target and strategy, when there is one.
    pub fn merge_on_completion(&self) -> Option<(&str, MergeStrategy)> {
        match (&self.merge_target_branch, self.merge_strategy) {
            (_, MergeStrategy::None) | (None, _) => None,
            (Some(target), strategy) => Some((target.as_str(), strategy)),
        }
    }
}

/// `verify_cmds` as commands: one a line; a value of one line is split on ` | ` as older
/// configurations wrote it (see [`crate::config`] on the migration).
pub fn verify_commands(value: &str) -> Vec<String> {
    let lines: Vec<&str> = if value.contains('\n') {
        value.lines().collect()
    } else {
        // Frozen by an earlier version: `|` (not `||`, not quoted) separated the commands.
        let mut parts = Vec::new();
        let mut start = 0;
        for bar in crate::config::lone_bars(value) {
            parts.push(&value[start..bar]);
            start = bar + 1;
        }
        parts.push(&value[start..]);
        parts
    };
    lines
        .into_iter()
        .map(str::trim)
        .filter(|cmd| !cmd.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads checked values; a value that does not read takes the key's default.
struct Read<'a>(&'a Config);

impl Read<'_> {
    fn raw(&self, key: &str) -> &str {
        debug_assert!(
            crate::config::find_key(key).is_some(),
            "{key} is not in the key table"
        );
        self.0.values().get(key).map_or("", String::as_str)
    }

    fn or_default<T>(&self, key: &str, read: impl Fn(&str) -> Option<T>) -> T {
        read(self.raw(key))
            .or_else(|| read(&default_of(key)))
            .unwrap_or_else(|| panic!("the default of {key} does not read"))
    }

    fn text(&self, key: &str) -> String {
        self.raw(key).to_owned()
    }

    fn optional(&self, key: &str) -> Option<String> {
        Some(self.raw(key).trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    fn words(&self, key: &str) -> Vec<String> {
        self.raw(key)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    fn flag(&self, key: &str) -> bool {
        self.or_default(key, crate::config::parse_bool)
    }

    fn number<T: std::str::FromStr>(&self, key: &str) -> T {
        self.or_default(key, |v| v.parse().ok())
    }

    fn amount(&self, key: &str) -> f64 {
        self.or_default(key, |v| v.parse().ok().filter(|n: &f64| n.is_finite()))
    }

    /// A count where 0 means "no limit".
    fn limit(&self, key: &str) -> Option<u32> {
        Some(self.number::<u32>(key)).filter(|n| *n > 0)
    }

    /// A count of seconds where 0 means "none".
    fn seconds(&self, key: &str) -> Option<Duration> {
        Some(self.number::<u64>(key))
            .filter(|n| *n > 0)
            .map(Duration::from_secs)
    }

    fn choice<T>(&self, key: &str, parse: fn(&str) -> Option<T>) -> T {
        self.or_default(key, parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Layer, parse};

    #[test]
    fn the_defaults_read_as_types() {
        let config = RunConfig::of(&Config::resolve([]));
        // What a careful person would pick for an unattended agent: a bounded number of
        // iterations and dollars, and a postmortem only when something went wrong.
        assert_eq!(config.iterations, 20);
        assert_eq!(config.max_cost_usd, Some(25.0));
        assert_eq!(config.postmortem, PostmortemWhen::Failed);
        assert_eq!(config.postmortem_model, "sonnet");
        assert_eq!(config.permission_mode, PermissionMode::BypassPermissions);
        assert_eq!(config.model, "opus");
        assert_eq!(config.review_model, "opus");
        assert_eq!(config.agent_timeout, Some(Duration::from_secs(600)));
        assert_eq!(config.verify_timeout, None);
        assert_eq!(config.max_consecutive_verification_failures, Some(3));
        assert_eq!(config.max_consecutive_review_failures, None);
        assert_eq!(config.worktree_provider, WorktreeChoice::Auto);
        assert_eq!(config.merge_strategy, MergeStrategy::Squash);
        assert_eq!(config.merge_on_completion(), None);
        assert!(config.verify_cmds.is_empty());
        assert_eq!(config.mode, RunMode::Plan);
        assert_eq!(config.experiment, None);
    }

    #[test]
    fn an_experiment_reads_its_keys_as_types() {
        let layer = parse(
            "f",
            "mode=experiment\nmeasure_cmd=python3 bench.py\nmin_effect=2%\ngoal=maximize\n\
             target=-1.5\npatience=0\n",
        )
        .expect("valid");
        let config = RunConfig::of(&Config::resolve([&layer]));
        assert_eq!(
            config.experiment,
            Some(ExperimentConfig {
                measure_cmd: "python3 bench.py".to_owned(),
                metric: None,
                goal: Goal::Maximize,
                repeats: 5,
                min_effect: 0.02,
                confidence: 0.95,
                target: Some(-1.5),
                patience: None,
                baseline_every: Some(5),
                measure_timeout: None,
            })
        );
    }

    #[test]
    fn values_read_as_types_and_unreadable_frozen_values_take_defaults() {
        let layer = parse(
            "f",
            "model=sonnet\nreview_model=haiku\nmax_cost_usd=2.5\nmerge_target_branch=main\n\
             merge_strategy=merge\ncontext_files=a.md  b.md\nverify_timeout_sec=30\n",
        )
        .expect("valid");
        let config = RunConfig::of(&Config::resolve([&layer]));
        assert_eq!(config.review_model, "haiku");
        assert_eq!(config.max_cost_usd, Some(2.5));
        assert_eq!(
            config.merge_on_completion(),
            Some(("main", MergeStrategy::Merge))
        );
        assert_eq!(config.context_files, ["a.md", "b.md"]);
        assert_eq!(config.verify_timeout, Some(Duration::from_secs(30)));
        // A frozen table written by some other build, with a value this one cannot read.
        let frozen = Layer::from([("iterations".to_owned(), "many".to_owned())]);
        assert_eq!(RunConfig::from_frozen(&frozen).iterations, 20);
        // `postmortem` was a boolean; its old values still read.
        let old = parse("f", "postmortem=true\n").expect("valid");
        assert_eq!(
            RunConfig::of(&Config::resolve([&old])).postmortem,
            PostmortemWhen::Always
        );
    }

    #[test]
    fn verify_commands_are_lines_and_old_one_line_values_split_on_bars() {
        assert_eq!(
            verify_commands("cargo test\nfalse || true\n\ncmd | tee out\n"),
            ["cargo test", "false || true", "cmd | tee out"]
        );
        assert_eq!(verify_commands("cmd | tee out\n"), ["cmd | tee out"]);
        // What an earlier version froze.
        assert_eq!(
            verify_commands("cargo test | cargo clippy"),
            ["cargo test", "cargo clippy"]
        );
        assert_eq!(
            verify_commands("false || true | sh -c 'a | b'"),
            ["false || true", "sh -c 'a | b'"]
        );
        assert!(verify_commands("  ").is_empty());
    }

    #[test]
    fn a_config_file_lists_verify_commands_one_per_line() {
        let layer = parse(
            ".loop/config",
            "verify_cmds=cargo test\nverify_cmds=cmd | tee out\nverify_cmds=false || true\n",
        )
        .unwrap();
        assert_eq!(
            verify_commands(&layer["verify_cmds"]),
            ["cargo test", "cmd | tee out", "false || true"]
        );
        let one = parse(".loop/config", "verify_cmds=sh -c 'a | b'\n").unwrap();
        assert_eq!(verify_commands(&one["verify_cmds"]), ["sh -c 'a | b'"]);
        // A lone `|` on the key's only line is what earlier versions split on: refused, saying
        // how to write it now.
        let error = parse(".loop/config", "reviewer=true\nverify_cmds=a | b\n").unwrap_err();
        assert_eq!((error.line, error.key.as_str()), (2, "verify_cmds"));
        assert!(
            error
                .problem
                .contains("one `verify_cmds=` line per command"),
            "{error}"
        );
    }
}
