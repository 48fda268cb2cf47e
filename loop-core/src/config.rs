//! `.loop/config`: the keys, their defaults, and the parser (`contract.md` §2).
//!
//! A config file is `key=value` lines. `#` starts a comment line, matching surrounding quotes are
//! stripped, booleans are true/false/1/0/yes/no/on/off in any case. Every value is checked when
//! the file is read, so a mistake is reported when the run is created, with file, line and key,
//! never halfway through a run. Layers are merged by precedence (flags > `--config` >
//! `<workspace>/.loop/config` > defaults) and the result is frozen into `RUN_CREATED`.

pub mod choice;
pub mod experiment;
mod keys;
pub mod run;

use std::collections::BTreeMap;

use thiserror::Error;

pub use choice::{
    AgentName, ArtifactMode, BudgetAction, CompletionMode, Goal, MergeStrategy, NamingMode,
    PermissionMode, PostmortemWhen, RunMode, WorktreeChoice,
};
pub use experiment::ExperimentConfig;
pub use keys::{KEYS, Key, Kind, default_of, find_key};

use Kind::{Amount, Bool, Count, Fraction, Number, OneOf, Text};
pub use run::RunConfig;

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
