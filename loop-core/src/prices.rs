//! What an agent call costs when the agent reports no cost (Codex reports tokens only): its
//! tokens priced by a table per model. Budgets, `max_cost_usd` and the figures shown to people
//! use the estimate, marked estimated wherever it is shown.
//!
//! The table ships with the project ([`PriceTable::shipped`], `prices.txt` beside this file)
//! and a person can override or extend it with a file of the same form (`loopd --prices`):
//!
//! ```text
//! # model            input  cached  cache_write  output    (USD per million tokens)
//! gpt-5-codex        1.25   0.125   1.25         10.00
//! default codex gpt-5-codex
//! ```
//!
//! A model is looked up by its name, else by the longest listed name it starts with
//! (`gpt-5-codex-2025-09-15` is priced as `gpt-5-codex`); a call that names no model (Codex's own
//! default) is priced as the agent's `default` line says. No clock, no file: the runtime reads
//! an override and hands it here.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::event::Tokens;

/// The prices shipped with the project.
const SHIPPED: &str = include_str!("prices.txt");

/// One model's prices, in US dollars per million tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Price {
    /// Fresh input.
    pub input: f64,
    /// Input read from the prompt cache.
    pub cached: f64,
    /// Input written to the prompt cache.
    pub cache_write: f64,
    pub output: f64,
}

/// Prices by model, and each agent's default model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PriceTable {
    models: BTreeMap<String, Price>,
    defaults: BTreeMap<String, String>,
}

/// A line of a price file that does not read.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("price table line {line}: {problem}")]
pub struct PriceError {
    pub line: usize,
    pub problem: String,
}

impl PriceTable {
    /// The table shipped with the project.
    pub fn shipped() -> PriceTable {
        PriceTable::parse(SHIPPED).expect("the shipped price table reads")
    }

    /// Reads a price file: `model input cached cache_write output` lines, `default AGENT
    /// MODEL` lines, blank lines and `#` comments. Every problem names its line.
    pub fn parse(text: &str) -> Result<PriceTable, PriceError> {
        let mut table = PriceTable::default();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let problem = |problem: String| PriceError {
                line: line_no,
                problem,
            };
            match fields.as_slice() {
                ["default", agent, model] => {
                    table
                        .defaults
                        .insert((*agent).to_owned(), (*model).to_owned());
                }
                [model, input, cached, cache_write, output] => {
                    let number = |text: &str, what: &str| {
                        text.parse::<f64>()
                            .ok()
                            .filter(|n| n.is_finite() && *n >= 0.0)
                            .ok_or_else(|| {
                                problem(format!(
                                    "{what} price of {model} is {text:?}, not a number of dollars \
                                     per million tokens"
                                ))
                            })
                    };
                    let price = Price {
                        input: number(input, "input")?,
                        cached: number(cached, "cached input")?,
                        cache_write: number(cache_write, "cache write")?,
                        output: number(output, "output")?,
                    };
                    table.models.insert((*model).to_owned(), price);
                }
                _ => {
                    return Err(problem(format!(
                        "{line:?} is neither `MODEL INPUT CACHED CACHE_WRITE OUTPUT` nor \
                         `default AGENT MODEL`"
                    )));
                }
            }
        }
        Ok(table)
    }

    /// This table with `other`'s lines over it (an override file over the shipped table).
    pub fn with(mut self, other: PriceTable) -> PriceTable {
        self.models.extend(other.models);
        self.defaults.extend(other.defaults);
        self
    }

    /// The price of `model` as `agent` names it (empty: the agent's default model), and the
    /// name it was found under.
    pub fn price(&self, agent: &str, model: &str) -> Option<(&str, Price)> {
        let model = if model.trim().is_empty() {
            self.defaults.get(agent)?.as_str()
        } else {
            model.trim()
        };
        if let Some((name, price)) = self.models.get_key_value(model) {
            return Some((name, *price));
        }
        self.models
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len())
            .map(|(name, price)| (name.as_str(), *price))
    }

    /// What `tokens` cost on `model`, if the table prices it. Fresh input is what `input`
    /// counts beyond the cache reads and writes.
    pub fn estimate(&self, agent: &str, model: &str, tokens: &Tokens) -> Option<f64> {
        let (_, price) = self.price(agent, model)?;
        let fresh = tokens
            .input
            .saturating_sub(tokens.cached)
            .saturating_sub(tokens.cache_write);
        let cost = (fresh as f64 * price.input
            + tokens.cached as f64 * price.cached
            + tokens.cache_write as f64 * price.cache_write
            + tokens.output as f64 * price.output)
            / 1_000_000.0;
        cost.is_finite().then_some(cost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_prices_codex_s_models_and_its_default() {
        let table = PriceTable::shipped();
        let tokens = Tokens {
            input: 24_763,
            output: 122,
            cached: 24_448,
            cache_write: 0,
            reasoning: 64,
        };
        let named = table
            .estimate("codex", "gpt-5-codex", &tokens)
            .expect("priced");
        let default = table.estimate("codex", "", &tokens).expect("priced");
        assert!(
            named > 0.0 && (named - default).abs() < 1e-12,
            "{named} {default}"
        );
        // A dated name is priced as the model it starts with.
        assert_eq!(
            table
                .price("codex", "gpt-5-codex-2025-09-15")
                .map(|(n, _)| n),
            Some("gpt-5-codex")
        );
        assert_eq!(table.estimate("codex", "no-such-model", &tokens), None);
    }

    #[test]
    fn fresh_cached_and_written_input_are_priced_apart() {
        let table = PriceTable::parse("m 2 1 4 10\n").expect("a table");
        let tokens = Tokens {
            input: 1_000_000,
            cached: 500_000,
            cache_write: 250_000,
            output: 100_000,
            reasoning: 0,
        };
        // 250k fresh × 2 + 500k cached × 1 + 250k written × 4 + 100k out × 10, per million.
        let cost = table.estimate("any", "m", &tokens).expect("priced");
        assert!((cost - (0.5 + 0.5 + 1.0 + 1.0)).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn an_override_replaces_and_extends() {
        let over = PriceTable::parse("gpt-5-codex 9 9 9 9\nmine 1 1 1 1\ndefault codex mine\n")
            .expect("a table");
        let table = PriceTable::shipped().with(over);
        assert_eq!(table.price("codex", "gpt-5-codex").unwrap().1.input, 9.0);
        assert_eq!(table.price("codex", "").map(|(n, _)| n), Some("mine"));
    }

    #[test]
    fn a_bad_line_names_itself() {
        let error = PriceTable::parse("# prices\nm 1 2 x 4\n").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(error.problem.contains("cache write"), "{error}");
        assert_eq!(PriceTable::parse("m 1 2\n").unwrap_err().line, 1);
        assert!(PriceTable::parse("m 1 2 -3 4").is_err());
    }

    proptest::proptest! {
        /// Any text: an error or a table, never a panic; a table's estimates are finite and
        /// never negative.
        #[test]
        fn any_text_reads_without_panic(text in "[a-z0-9 .#\\n-]{0,200}", input in 0u64..1 << 40, cached in 0u64..1 << 40, output in 0u64..1 << 40) {
            if let Ok(table) = PriceTable::parse(&text) {
                let tokens = Tokens { input, cached, cache_write: 0, output, reasoning: 0 };
                for model in text.split_whitespace() {
                    if let Some(cost) = table.estimate("a", model, &tokens) {
                        proptest::prop_assert!(cost.is_finite() && cost >= 0.0);
                    }
                }
            }
        }
    }
}
