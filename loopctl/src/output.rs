//! Where output goes: data on stdout (JSON with `--json`), messages and errors on stderr.

use std::io::Write;
use std::sync::Mutex;

use crate::escapes::Sanitizer;

#[derive(Debug)]
pub struct Output {
    pub json: bool,
    /// Agent text without its terminal escapes, unless `--raw` (`None` then).
    agent: Option<Mutex<Sanitizer>>,
}

impl Output {
    pub fn new(json: bool, raw: bool) -> Output {
        Output {
            json,
            agent: (!raw).then(|| Mutex::new(Sanitizer::default())),
        }
    }

    /// Text an agent (or a tool it ran) wrote, for people (ignored under `--json`): its
    /// terminal escapes and control characters removed (`escapes.rs`), unless `--raw`. A
    /// stream given in pieces keeps its state between them (the live views keep one per step:
    /// `escapes::ByStep`).
    pub fn agent(&self, text: &str) {
        match &self.agent {
            Some(sanitizer) if !self.json => {
                let cleaned = sanitizer
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clean(text);
                self.raw(&cleaned);
            }
            _ => self.raw(text),
        }
    }

    /// A line of agent text on its own (a note it gave), for people: as [`Output::agent`],
    /// without state from any other text.
    pub fn agent_line(&self, text: &str) {
        match &self.agent {
            Some(_) => self.line(&Sanitizer::default().clean(text)),
            None => self.line(text),
        }
    }

    /// Whether agent text is shown as written (`--raw`).
    pub fn is_raw(&self) -> bool {
        self.agent.is_none()
    }

    /// A line of data for people (ignored under `--json`).
    pub fn line(&self, text: &str) {
        if !self.json {
            let _ = writeln!(std::io::stdout().lock(), "{text}");
        }
    }

    /// Text exactly as given, for people (ignored under `--json`).
    pub fn raw(&self, text: &str) {
        if !self.json {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
        }
    }

    /// A status line for people, on stderr so stdout stays data.
    pub fn note(&self, text: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }

    /// The command's JSON document (only under `--json`): a `loop_api` type where the API has
    /// one, else one of loopctl's own (`crate::documents`).
    pub fn document<T: serde::Serialize + ?Sized>(&self, value: &T) {
        if self.json {
            let text = serde_json::to_string(value).unwrap_or_else(|error| {
                format!("{{\"error\":\"cannot write the document: {error}\",\"code\":\"error\"}}")
            });
            let _ = writeln!(std::io::stdout().lock(), "{text}");
        }
    }

    /// One line of JSON as it was received (only under `--json`): streams print JSON lines.
    pub fn json_line(&self, text: &str) {
        if self.json {
            let _ = writeln!(std::io::stdout().lock(), "{text}");
        }
    }

    /// An error in one line, with its causes; under `--json`, one JSON object
    /// `{"error": "<message>", "code": "<code>"}` (see [`crate::error::code_of`]).
    pub fn error(&self, error: &anyhow::Error) {
        let mut text = error.to_string();
        for cause in error.chain().skip(1) {
            text.push_str(&format!(": {cause}"));
        }
        if self.json {
            let code = crate::error::code_of(error);
            error_document(&text, &code);
        } else {
            let _ = writeln!(std::io::stderr().lock(), "loopctl: {text}");
        }
    }
}

/// An error as scripts read it under `--json`: one JSON object on stderr, the daemon's shape.
pub fn error_document(message: &str, code: &str) {
    let document = loop_api::meta::ErrorBody {
        error: message.to_owned(),
        code: code.to_owned(),
    };
    let text = serde_json::to_string(&document).unwrap_or_default();
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}
