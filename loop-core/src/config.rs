//! `.loop/config`: the keys, their defaults, and the parser (`contract.md` §2).
//!
//! A config file is `key=value` lines. `#` starts a comment line, matching surrounding quotes are
//! stripped, booleans are true/false/1/0/yes/no/on/off in any case. Every value is checked when
//! the file is read, so a mistake is reported when the run is created, with file, line and key,
//! never halfway through a run. Layers are merged by precedence (flags > `--config` >
//! `<workspace>/.loop/config` > defaults) and the result is frozen into `RUN_CREATED`.

pub mod choice;
pub mod experiment;
pub mod run;

use std::collections::BTreeMap;

use thiserror::Error;

pub use choice::{
    ArtifactMode, BudgetAction, CompletionMode, Goal, MergeStrategy, NamingMode, PermissionMode,
    PostmortemWhen, RunMode, WorktreeChoice,
};
pub use experiment::ExperimentConfig;
pub use run::RunConfig;

/// What a key's value must look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    Bool,
    /// A whole number ≥ 0.
    Count,
    /// A number ≥ 0 (dollars).
    Amount,
    /// A share below 1, written `0.01` or `1%`; kept as the decimal.
    Fraction,
    /// Any finite number, or empty for none.
    Number,
    OneOf(&'static [&'static str]),
}

/// One configuration key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub name: &'static str,
    /// The default as written in a config file; empty means unset.
    pub default: &'static str,
    pub kind: Kind,
    pub doc: &'static str,
}

const fn key(name: &'static str, default: &'static str, kind: Kind, doc: &'static str) -> Key {
    Key {
        name,
        default,
        kind,
        doc,
    }
}

use Kind::{Amount, Bool, Count, Fraction, Number, OneOf, Text};

/// Every key, in the order `loopctl init` writes them.
pub const KEYS: &[Key] = &[
    key("specs_dir", "specs", Text, "where specs live"),
    key(
        "plans_dir",
        "specs/planning",
        Text,
        "where plans (<stem>-plan.md) live",
    ),
    key(
        "log_dir",
        "logs/loop",
        Text,
        "where run directories are written, under the workspace",
    ),
    key(
        "global_log_dir",
        "",
        Text,
        "global artifact mirror root; empty = the daemon's data dir",
    ),
    key(
        "artifact_mode",
        "mirror",
        OneOf(ArtifactMode::NAMES),
        "where run artifacts go",
    ),
    key(
        "agent",
        "claude",
        Text,
        "agent adapter: claude, codex, command (or one an embedder registered)",
    ),
    key(
        "agent_cmd",
        "",
        Text,
        "for agent=command: shell command; prompt on stdin and in $LOOP_PROMPT_FILE",
    ),
    key(
        "claude_bin",
        "claude",
        Text,
        "path or name of the Claude Code CLI",
    ),
    key("codex_bin", "codex", Text, "path or name of the Codex CLI"),
    key(
        "model",
        "opus",
        Text,
        "Claude Code's model for implementation",
    ),
    key(
        "claude_permission_mode",
        "bypassPermissions",
        OneOf(PermissionMode::NAMES),
        "what Claude Code may do unasked: bypassPermissions (all), acceptEdits, default, plan",
    ),
    key(
        "review_model",
        "",
        Text,
        "Claude Code's model for review; empty = model",
    ),
    key(
        "codex_model",
        "",
        Text,
        "Codex's model (-m) for every step; empty = Codex's own default",
    ),
    key(
        "iterations",
        "20",
        Count,
        "implementation iterations before iterations_exhausted",
    ),
    key(
        "completion_mode",
        "trailing",
        OneOf(CompletionMode::NAMES),
        "exact: whole answer is the token; trailing: last non-empty line",
    ),
    key(
        "reviewer",
        "true",
        Bool,
        "run a review step after each implementation step",
    ),
    key(
        "prompt_file",
        "",
        Text,
        "custom implementation prompt; else .loop/prompt.txt if present",
    ),
    key(
        "context_files",
        "",
        Text,
        "extra files referenced as @path, space-separated",
    ),
    key(
        "verify_cmds",
        "",
        Text,
        "verification commands: repeat the key, one command each, run whole by sh -c",
    ),
    key(
        "verify_timeout_sec",
        "0",
        Count,
        "timeout per verification command; 0 = none",
    ),
    key(
        "claude_timeout_sec",
        "600",
        Count,
        "timeout per agent call; 0 = none",
    ),
    key(
        "claude_retries",
        "0",
        Count,
        "retries of a failed agent call",
    ),
    key(
        "claude_retry_backoff_sec",
        "5",
        Count,
        "first backoff between agent retries",
    ),
    key(
        "transient_retries",
        "8",
        Count,
        "retries of an agent call that met a network error, 429, 529 or 5xx",
    ),
    key(
        "transient_backoff_sec",
        "15",
        Count,
        "first backoff between those retries; doubles, at most 600",
    ),
    key(
        "agent_heartbeat_sec",
        "60",
        Count,
        "a progress line in the step log after this long without output; 0 = none",
    ),
    key(
        "max_consecutive_verification_failures",
        "3",
        Count,
        "fail the run after this many failed verifications in a row; 0 = off",
    ),
    key(
        "max_consecutive_review_failures",
        "0",
        Count,
        "fail the run after this many failed reviews in a row; 0 = off",
    ),
    key(
        "max_watchdog_rewrites",
        "2",
        Count,
        "prompt rewrites before a watchdog signal fails the run",
    ),
    key(
        "mode",
        "plan",
        OneOf(RunMode::NAMES),
        "plan: work through the plan's tasks; experiment: improve a measured number, keeping only changes measured to be better",
    ),
    key(
        "measure_cmd",
        "",
        Text,
        "for mode=experiment: run by sh -c in a checkout of each commit measured; its last stdout line is a number or a JSON object of numbers",
    ),
    key(
        "metric",
        "",
        Text,
        "the number of measure_cmd's JSON object that decides; empty = its only number",
    ),
    key(
        "goal",
        "minimize",
        OneOf(Goal::NAMES),
        "minimize or maximize the metric",
    ),
    key(
        "measure_repeats",
        "5",
        Count,
        "samples of the candidate and of the best each, taken alternately; at least 2",
    ),
    key(
        "min_effect",
        "0.01",
        Fraction,
        "the smallest relative change worth keeping (0.01 or 1%)",
    ),
    key(
        "confidence",
        "0.95",
        Fraction,
        "how sure a kept change must be to beat the best by min_effect (0.5 to 0.999)",
    ),
    key(
        "target",
        "",
        Number,
        "stop once the best metric reaches this; empty = no target",
    ),
    key(
        "patience",
        "10",
        Count,
        "stop after this many iterations in a row without a kept change; 0 = none",
    ),
    key(
        "baseline_every",
        "5",
        Count,
        "measure the starting commit again every this many iterations, to show drift; 0 = never",
    ),
    key(
        "measure_timeout_sec",
        "0",
        Count,
        "timeout per measure_cmd run; 0 = none",
    ),
    key(
        "max_cost_usd",
        "25",
        Amount,
        "stop the run once reported agent cost passes this; 0 = none",
    ),
    key(
        "account",
        "",
        Text,
        "the agent account this run's calls count against; empty = derived from the agent and its credentials",
    ),
    key(
        "account_pool",
        "",
        Text,
        "accounts the daemon declares (space-separated) among which each agent call goes to the one with the most headroom, failing over at a usage limit; empty = account alone",
    ),
    key(
        "account_reserve_pct",
        "0",
        Count,
        "start no new iteration while the account's rate-limit window is used beyond 100 minus this percent; 0 = none",
    ),
    key(
        "account_concurrency",
        "0",
        Count,
        "the most agent calls of this run's account at once; when more of its runs want one they take turns by iteration; 0 = no cap",
    ),
    key(
        "priority",
        "1",
        Count,
        "this run's share of its account's turns under account_concurrency (2 takes two iterations for one of 1; 0 counts as 1)",
    ),
    key(
        "account_budget_usd_per_day",
        "0",
        Amount,
        "stop calls of this run's account once its calls cost this today (UTC); 0 = none",
    ),
    key(
        "account_budget_usd_per_month",
        "0",
        Amount,
        "the same for the UTC month; 0 = none",
    ),
    key(
        "account_budget_action",
        "wait",
        OneOf(BudgetAction::NAMES),
        "at an account budget: wait for the next day or month, or fail the run",
    ),
    key(
        "usage_limit_wait",
        "true",
        Bool,
        "wait for a usage limit's reset time instead of failing",
    ),
    key(
        "run_naming_mode",
        "haiku",
        OneOf(NamingMode::NAMES),
        "how a run is named",
    ),
    key("run_naming_model", "haiku", Text, "model for the run name"),
    key(
        "base_branch",
        "",
        Text,
        "branch the run starts from; empty = detected",
    ),
    key(
        "run_branch_prefix",
        "run/",
        Text,
        "run branch = prefix + slug(name)",
    ),
    key(
        "merge_target_branch",
        "",
        Text,
        "merge on completion into this branch; empty = no merge",
    ),
    key(
        "merge_strategy",
        "squash",
        OneOf(MergeStrategy::NAMES),
        "how to merge",
    ),
    key(
        "worktree_path_template",
        "../{{ repo }}.{{ run_branch | sanitize }}",
        Text,
        "where the run worktree goes",
    ),
    key(
        "worktree_provider",
        "auto",
        OneOf(WorktreeChoice::NAMES),
        "auto = Worktrunk when wt answers, else git; none = work in the workspace itself",
    ),
    key("worktrunk_bin", "wt", Text, "the Worktrunk binary"),
    key("worktrunk_config_path", "", Text, "Worktrunk config file"),
    key(
        "worktrunk_copy_ignored",
        "false",
        Bool,
        "copy ignored files into a new Worktrunk worktree",
    ),
    key(
        "worktree_cleanup",
        "true",
        Bool,
        "remove the worktree when the run ends (kept while a finished run awaits review)",
    ),
    key("summary_json", "true", Bool, "write summary.json"),
    key(
        "postmortem",
        "failed",
        OneOf(PostmortemWhen::NAMES),
        "postmortem analysis at run end: failed (runs only), always, never",
    ),
    key(
        "postmortem_model",
        "sonnet",
        Text,
        "model for the postmortem's analyses",
    ),
    key(
        "agent_idle_timeout_sec",
        "900",
        Count,
        "stop an agent that prints nothing for this long; 0 = none",
    ),
    key(
        "notify_cmd",
        "",
        Text,
        "run this command with the event JSON on stdin on notable events",
    ),
    key(
        "notify_webhook",
        "",
        Text,
        "POST the event JSON here on notable events",
    ),
];

/// The key named `name`.
pub fn find_key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.name == name)
}

/// The default value of a key ("" for an unknown key).
pub fn default_of(name: &str) -> String {
    find_key(name).map_or_else(String::new, |key| key.default.to_owned())
}

/// A config mistake, with where it is.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{source_name}:{line}: {key}: {problem}")]
pub struct ConfigError {
    /// The file (or `--flag`) the value came from.
    pub source_name: String,
    /// 1-based line; 0 for values that did not come from a file.
    pub line: usize,
    /// The key, or the line's text when it has no key.
    pub key: String,
    pub problem: String,
}

/// Values from one source (a file or the flags), checked and normalized.
pub type Layer = BTreeMap<String, String>;

/// Parses one config file. `source_name` names it in errors.
pub fn parse(source_name: &str, text: &str) -> Result<Layer, ConfigError> {
    let mut layer = Layer::new();
    // `verify_cmds` is a list: each line of it one command, the key repeated for more.
    let mut verify_lines: Vec<usize> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let error = |key: &str, problem: String| ConfigError {
            source_name: source_name.to_owned(),
            line: index + 1,
            key: key.to_owned(),
            problem,
        };
        let Some((name, value)) = line.split_once('=') else {
            return Err(error(line, "expected key=value".to_owned()));
        };
        let name = name.trim();
        let value = unquote(value.trim());
        let normalized = check(name, value).map_err(|problem| error(name, problem))?;
        if name == "verify_cmds" {
            verify_lines.push(index + 1);
            let earlier = layer.remove(name).unwrap_or_default();
            layer.insert(name.to_owned(), earlier + &normalized);
            continue;
        }
        layer.insert(name.to_owned(), normalized);
    }
    if let [line] = verify_lines[..]
        && let Some(value) = layer.get("verify_cmds")
        && has_lone_bar(value)
    {
        return Err(ConfigError {
            source_name: source_name.to_owned(),
            line,
            key: "verify_cmds".to_owned(),
            problem: format!(
                "`{}` has a `|`: each verify_cmds line is now one command, run whole by sh -c \
                 (it used to separate commands). Write one `verify_cmds=` line per command; a \
                 pipeline on one of several lines, or as `sh -c '…'`, runs whole",
                value.trim_end()
            ),
        });
    }
    Ok(layer)
}

/// A `verify_cmds` value as its canonical list: one command a line, each line ending in `\n`
/// (a frozen value without a newline is from an earlier version, where `|` separated commands).
fn command_lines(value: &str) -> String {
    value
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| format!("{line}\n"))
        .collect()
}

/// Whether `value` has a `|` outside quotes that is not part of `||`: a pipe, or the separator
/// earlier versions read it as.
pub(crate) fn has_lone_bar(value: &str) -> bool {
    lone_bars(value).next().is_some()
}

/// The byte offsets of the lone `|`s of `value` outside single or double quotes.
pub(crate) fn lone_bars(value: &str) -> impl Iterator<Item = usize> + '_ {
    let bytes = value.as_bytes();
    let mut quote: Option<u8> = None;
    (0..bytes.len()).filter(move |&i| {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => {
                quote = None;
                false
            }
            Some(_) => false,
            None if c == b'\'' || c == b'"' => {
                quote = Some(c);
                false
            }
            None => {
                c == b'|' && bytes.get(i + 1) != Some(&b'|') && (i == 0 || bytes[i - 1] != b'|')
            }
        }
    })
}

/// Checks one value given outside a file (a flag or an API field).
pub fn check_value(source_name: &str, name: &str, value: &str) -> Result<String, ConfigError> {
    check(name, value).map_err(|problem| ConfigError {
        source_name: source_name.to_owned(),
        line: 0,
        key: name.to_owned(),
        problem,
    })
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

fn check(name: &str, value: &str) -> Result<String, String> {
    let Some(key) = find_key(name) else {
        return Err("unknown key".to_owned());
    };
    if name == "verify_cmds" {
        return Ok(command_lines(value));
    }
    // `postmortem` was a boolean: its old values still read.
    if name == "postmortem" {
        match parse_bool(value) {
            Some(true) => return Ok("always".to_owned()),
            Some(false) => return Ok("never".to_owned()),
            None => {}
        }
    }
    match key.kind {
        Text => Ok(value.to_owned()),
        Bool => parse_bool(value)
            .map(|b| b.to_string())
            .ok_or_else(|| format!("{value:?} is not a boolean (true/false/1/0/yes/no/on/off)")),
        Count => value
            .parse::<u64>()
            .map(|n| n.to_string())
            .map_err(|_| format!("{value:?} is not a whole number ≥ 0")),
        Amount => match value.parse::<f64>() {
            Ok(n) if n.is_finite() && n >= 0.0 => Ok(value.to_owned()),
            _ => Err(format!("{value:?} is not an amount ≥ 0")),
        },
        Fraction => fraction(value)
            .map(|n| n.to_string())
            .ok_or_else(|| format!("{value:?} is not a share below 1 (like 0.01 or 1%)")),
        Number => match value.parse::<f64>() {
            _ if value.is_empty() => Ok(String::new()),
            Ok(n) if n.is_finite() => Ok(value.to_owned()),
            _ => Err(format!("{value:?} is not a number")),
        },
        OneOf(choices) => {
            if choices.contains(&value) {
                Ok(value.to_owned())
            } else {
                Err(format!("{value:?} is not one of {}", choices.join(", ")))
            }
        }
    }
}

/// A share below 1: `0.01`, or `1%`.
pub(crate) fn fraction(value: &str) -> Option<f64> {
    let share = match value.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().ok()? / 100.0,
        None => value.parse::<f64>().ok()?,
    };
    (share.is_finite() && (0.0..1.0).contains(&share)).then_some(share)
}

pub(crate) fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The resolved configuration of a run: every key, from the highest layer that sets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    values: BTreeMap<String, String>,
}

impl Config {
    /// Merges layers, highest precedence first, over the defaults.
    pub fn resolve<'a>(layers: impl IntoIterator<Item = &'a Layer>) -> Config {
        let mut values: BTreeMap<String, String> = KEYS
            .iter()
            .map(|key| (key.name.to_owned(), key.default.to_owned()))
            .collect();
        let layers: Vec<&Layer> = layers.into_iter().collect();
        for layer in layers.into_iter().rev() {
            for (name, value) in layer {
                values.insert(name.clone(), value.clone());
            }
        }
        Config { values }
    }

    /// A frozen config as stored in `RUN_CREATED`; keys it lacks (written by an older build)
    /// take their defaults.
    pub fn from_frozen(frozen: &BTreeMap<String, String>) -> Config {
        Config::resolve([frozen])
    }

    /// Every key and value, as frozen into `RUN_CREATED`.
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// The typed configuration these values make.
    pub fn typed(&self) -> RunConfig {
        RunConfig::of(self)
    }

    /// Sets a value the runtime settles itself when it creates a run, over what every layer
    /// said: it is frozen into `RUN_CREATED` with the rest.
    pub fn settle(&mut self, value: Settled) {
        let (key, value) = match value {
            Settled::BaseBranch(branch) => ("base_branch", branch),
            Settled::Account(account) => ("account", account),
        };
        self.values.insert(key.to_owned(), value);
    }
}

/// A value the runtime settles when it creates a run ([`Config::settle`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    /// The branch a repository named by URL was checked out at: the run's base.
    BaseBranch(String),
    /// The account derived from the agent and its credentials, when none was named.
    Account(String),
}

/// The commented `.loop/config` that `loopctl init` writes: every key with its default.
pub fn commented_template() -> String {
    let mut text = String::from(
        "# loop configuration: key=value lines, # starts a comment.\n\
         # Precedence: command-line flags > --config file > this file > defaults.\n\
         # Every key is listed with its default; uncomment a line to change it.\n",
    );
    for key in KEYS {
        text.push_str(&format!(
            "\n# {}\n# {}={}\n",
            key.doc, key.name, key.default
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values_quotes_comments_and_booleans() {
        let layer = parse(
            ".loop/config",
            "# comment\n\nmodel = \"sonnet\"\nreviewer=OFF\niterations='7'\nverify_cmds=cargo test\nverify_cmds=cargo clippy\n",
        )
        .expect("valid config");
        assert_eq!(layer["model"], "sonnet");
        assert_eq!(layer["reviewer"], "false");
        assert_eq!(layer["iterations"], "7");
        let config = Config::resolve([&layer]).typed();
        assert_eq!(config.verify_cmds, ["cargo test", "cargo clippy"]);
        assert_eq!(config.review_model, "sonnet");
        assert_eq!(config.postmortem, PostmortemWhen::Failed);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        for (text, line, key, problem) in [
            ("model=x\nbogus=1", 2, "bogus", "unknown key"),
            ("reviewer=maybe", 1, "reviewer", "not a boolean"),
            ("\n\niterations=-1", 3, "iterations", "whole number"),
            (
                "merge_strategy=rebase",
                1,
                "merge_strategy",
                "not one of none, merge, squash",
            ),
            ("max_cost_usd=NaN", 1, "max_cost_usd", "amount"),
            ("min_effect=1.5", 1, "min_effect", "share below 1"),
            ("min_effect=-1%", 1, "min_effect", "share below 1"),
            ("target=fast", 1, "target", "not a number"),
            ("goal=faster", 1, "goal", "not one of minimize, maximize"),
            ("just words", 1, "just words", "expected key=value"),
        ] {
            let error = parse("repo/.loop/config", text).expect_err(text);
            assert_eq!((error.line, error.key.as_str()), (line, key), "{text}");
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("repo/.loop/config:{line}: {key}: "))
            );
            assert!(error.problem.contains(problem), "{error}");
        }
    }

    #[test]
    fn shares_read_as_decimals_or_percentages() {
        let layer = parse("f", "min_effect=1%\nconfidence=0.9\ntarget=\n").expect("valid");
        assert_eq!(layer["min_effect"], "0.01");
        assert_eq!(layer["confidence"], "0.9");
        assert_eq!(layer["target"], "");
        assert_eq!(fraction("2.5 %"), Some(0.025));
        assert_eq!(fraction("1"), None);
        assert_eq!(fraction("NaN"), None);
    }

    #[test]
    fn higher_layers_win_over_lower_ones_and_defaults() {
        let flags = Layer::from([("model".to_owned(), "haiku".to_owned())]);
        let file = parse("f", "model=sonnet\niterations=3").expect("valid");
        let config = Config::resolve([&flags, &file]);
        assert_eq!(config.values().len(), KEYS.len());
        let config = config.typed();
        assert_eq!(config.model, "haiku");
        assert_eq!(config.iterations, 3);
        assert_eq!(config.merge_strategy, MergeStrategy::Squash);
    }

    #[test]
    fn the_template_parses_back_to_the_defaults() {
        let uncommented: String = commented_template()
            .lines()
            .filter_map(|line| line.strip_prefix("# "))
            .filter(|line| {
                line.contains('=') && find_key(line.split('=').next().unwrap_or("")).is_some()
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let layer = parse("template", &uncommented).expect("template values are valid");
        assert_eq!(layer.len(), KEYS.len());
        assert_eq!(Config::resolve([&layer]), Config::resolve([]));
    }
}
