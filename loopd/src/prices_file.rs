//! The price table the daemon estimates costs by for agents that report none (Codex):
//! `loopd --prices FILE` (env `LOOPD_PRICES`), a file of the form of the shipped table
//! (`loop-core/src/prices.txt`), whose lines replace the shipped ones by model name and add
//! models it does not list. A line that does not read stops the daemon before it listens.

use std::path::Path;

use anyhow::Context;
use loop_core::prices::PriceTable;

/// The shipped table with the file at `path` over it.
pub fn load(path: &Path) -> anyhow::Result<PriceTable> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the price file {}", path.display()))?;
    over_shipped(&text).with_context(|| format!("the price file {}", path.display()))
}

fn over_shipped(text: &str) -> Result<PriceTable, loop_core::prices::PriceError> {
    Ok(PriceTable::shipped().with(PriceTable::parse(text)?))
}

#[cfg(test)]
mod tests {
    use loop_core::event::Tokens;

    use super::*;

    #[test]
    fn a_file_replaces_a_shipped_price_and_keeps_the_rest() {
        let table = over_shipped("gpt-5-codex 2.5 0.25 2.5 20 # doubled\n").expect("reads");
        let million = Tokens {
            input: 1_000_000,
            ..Tokens::default()
        };
        assert_eq!(table.estimate("codex", "gpt-5-codex", &million), Some(2.5));
        // The default model is still the shipped one, now at the file's price.
        assert_eq!(table.estimate("codex", "", &million), Some(2.5));
        assert_eq!(table.estimate("codex", "gpt-5-mini", &million), Some(0.25));
    }

    #[test]
    fn a_bad_line_stops_the_daemon_naming_the_file_and_the_line() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("prices.txt");
        std::fs::write(&path, "# ours\ngpt-5-codex 1.25 free 1.25 10\n").expect("write");
        let error = format!("{:#}", load(&path).expect_err("refused"));
        assert!(error.contains("prices.txt"), "{error}");
        assert!(error.contains("line 2"), "{error}");
        assert!(error.contains("\"free\""), "{error}");
    }
}
