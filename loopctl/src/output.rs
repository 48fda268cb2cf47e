//! Where output goes: data on stdout (JSON with `--json`), messages and errors on stderr.

use std::io::Write;

#[derive(Debug)]
pub struct Output {
    pub json: bool,
}

impl Output {
    pub fn new(json: bool) -> Output {
        Output { json }
    }

    /// A line of data for people (ignored under `--json`).
    pub fn line(&self, text: &str) {
        if !self.json {
            let _ = writeln!(std::io::stdout().lock(), "{text}");
        }
    }

    /// The command's JSON document (only under `--json`).
    pub fn document(&self, value: &serde_json::Value) {
        if self.json {
            let _ = writeln!(std::io::stdout().lock(), "{value}");
        }
    }

    /// An error in one line, with its causes.
    pub fn error(&self, error: &anyhow::Error) {
        let mut text = format!("loopctl: {error}");
        for cause in error.chain().skip(1) {
            text.push_str(&format!(": {cause}"));
        }
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }
}
