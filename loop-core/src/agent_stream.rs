//! What coding agents print, read one line at a time, and how a call to one ended.
//!
//! Claude Code's `stream-json` ([`claude`]) and Codex's `exec --json` ([`codex`]) are JSON Lines
//! on stdout. The runtime feeds each line to a stream as it arrives, takes the transcript when
//! the process is gone, and asks the agent's `classify` what the call amounted to: an answer to
//! use, a usage limit to wait out, a hiccup to back off from, a login for a person to fix, or a
//! failed attempt ([`CallEnd`]).
//!
//! Reading is tolerant, as `design/agents.md` asks: blank lines and lines that don't start with
//! `{` (banners, warnings) are skipped, trailing `\r` is stripped, an event of a type the parser
//! does not know is counted and kept out of the way, and a line that is not a JSON object with a
//! string `type` is counted as bad. No line stops the reading, and nothing here panics on input.
//!
//! Time is an argument: a reset given as a wall-clock time in a named zone ("resets 1pm
//! (Europe/Lisbon)") is resolved against `now_ms` with the IANA time zone database bundled into
//! the binary (jiff's `tzdb-bundle-always`), so no file or clock is read.

pub mod claude;
pub mod codex;
mod error_text;
mod tool_lines;

use jiff::tz::TimeZone;

use crate::event::{AgentDetail, Tokens};
use serde_json::{Map, Value};

pub use claude::{ClaudeStream, ClaudeTranscript};
pub use codex::{CodexStream, CodexTranscript};

/// Added to every reset time before a call is tried again, so the agent's clock and ours need
/// not agree to the second.
pub const RESET_MARGIN_MS: i64 = 60_000;

/// How long to wait on a usage limit whose reset time the agent did not say, or said in a form
/// that names no instant (a clock time without a zone): short, because the next call's message
/// may say more, and a call refused for a limit costs nothing.
pub const UNKNOWN_RESET_WAIT_MS: i64 = 30 * 60_000;

/// The moment a call is classified, and the time zone of the machine the agent ran on: reset
/// times come as "in 2 hours", as an instant, as a clock time in a named zone, or as a clock
/// time with no zone at all (Codex writes "try again at Jul 29th, 2026 1:05 AM" in the
/// machine's local time).
#[derive(Clone, Debug, PartialEq)]
pub struct When {
    pub now_ms: i64,
    pub local: TimeZone,
}

impl When {
    /// `now_ms` on a machine whose local time is UTC.
    pub fn utc(now_ms: i64) -> When {
        When {
            now_ms,
            local: TimeZone::UTC,
        }
    }
}

/// How a call to an agent ended, as far as the runtime needs to decide what to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallEnd {
    /// The call finished and its answer is usable.
    Success,
    /// The account's usage limit is reached: try again at `until_ms` (Unix milliseconds, the
    /// reset time plus [`RESET_MARGIN_MS`]). `window` names the window that refused the call
    /// when the agent says (Claude Code's `rateLimitType`: `five_hour`, `seven_day`,
    /// `seven_day_opus`, …): a model's own window holds only that model's calls.
    UsageLimit {
        until_ms: i64,
        reason: String,
        window: Option<String>,
    },
    /// Rate limited, overloaded or a server error: worth trying again after a backoff.
    Transient { reason: String },
    /// The agent is not logged in or its credentials were refused: a person must act, and
    /// `reason` says what to do. Trying again will not help.
    Auth { reason: String },
    /// Any other failure: the turn or budget cap was hit, the agent reported an error, or the
    /// process died before its final event (the reason then ends with its stderr tail).
    Failed { reason: String },
}

impl CallEnd {
    /// `success`, `usage_limit`, `transient`, `auth` or `failed`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            CallEnd::Success => "success",
            CallEnd::UsageLimit { .. } => "usage_limit",
            CallEnd::Transient { .. } => "transient",
            CallEnd::Auth { .. } => "auth",
            CallEnd::Failed { .. } => "failed",
        }
    }

    /// The explanation for people; empty for [`CallEnd::Success`].
    pub fn reason(&self) -> &str {
        match self {
            CallEnd::Success => "",
            CallEnd::UsageLimit { reason, .. }
            | CallEnd::Transient { reason }
            | CallEnd::Auth { reason }
            | CallEnd::Failed { reason } => reason,
        }
    }
}

/// What a call cost and reported of itself, whatever its end: a failed, refused or retried
/// call that was paid for is counted too.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallFigures {
    pub cost_usd: Option<f64>,
    /// Whether `cost_usd` is ours, from the tokens and a price table, for an agent that
    /// reports none (Codex); the agent's own figure otherwise.
    pub cost_estimated: bool,
    pub tokens: Option<Tokens>,
    pub detail: AgentDetail,
}

/// What became of the lines fed to a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineStats {
    /// JSON objects with a `type`, known or not.
    pub events: u64,
    /// Events whose `type` this parser does not know (newer agent versions add some).
    pub unknown: u64,
    /// Blank lines and lines that do not start with `{`: banners, warnings, progress text.
    pub skipped: u64,
    /// Lines that start with `{` but are not a JSON object with a string `type`.
    pub bad: u64,
}

/// One line, read as far as both agents' formats agree.
enum Line {
    Skipped,
    Bad,
    Event {
        kind: String,
        event: Map<String, Value>,
    },
}

fn read_line(line: &str) -> Line {
    let line = line
        .trim_end_matches('\r')
        .trim_start_matches('\u{feff}')
        .trim();
    if !line.starts_with('{') {
        return Line::Skipped;
    }
    let Ok(Value::Object(event)) = serde_json::from_str::<Value>(line) else {
        return Line::Bad;
    };
    match event.get("type") {
        Some(Value::String(kind)) => Line::Event {
            kind: kind.clone(),
            event,
        },
        _ => Line::Bad,
    }
}

impl LineStats {
    /// Counts `line` and hands back its event, if it is one.
    fn read(&mut self, line: &str) -> Option<(String, Map<String, Value>)> {
        match read_line(line) {
            Line::Skipped => {
                self.skipped += 1;
                None
            }
            Line::Bad => {
                self.bad += 1;
                None
            }
            Line::Event { kind, event } => {
                self.events += 1;
                Some((kind, event))
            }
        }
    }
}

/// Reads an agent's stream one line at a time into its transcript `T`: the line handling both
/// agents share (a BOM, `\r`, banners, bad JSON, an oversized line), while what each event
/// means is the transcript's ([`Transcript::event`]).
#[derive(Clone, Debug, Default)]
pub struct Stream<T> {
    transcript: T,
}

/// What a [`Stream`] reads into: one agent's transcript.
pub trait Transcript: Default {
    /// The counts of the lines read so far.
    fn lines_mut(&mut self) -> &mut LineStats;

    /// Reads one event of type `kind`; a kind it does not know is counted in
    /// [`LineStats::unknown`].
    fn event(&mut self, kind: &str, event: Map<String, Value>);
}

impl<T: Transcript> Stream<T> {
    pub fn new() -> Stream<T> {
        Stream::default()
    }

    /// A line too long to be kept whole (over 64 MiB): counted as bad, never parsed in part.
    pub fn feed_oversized(&mut self) {
        let lines = self.transcript.lines_mut();
        lines.bad = lines.bad.saturating_add(1);
    }

    /// Reads one line of stdout (with or without its `\r`). Never fails: what cannot be read is
    /// counted in the transcript's [`LineStats`].
    pub fn feed(&mut self, line: &str) {
        if let Some((kind, event)) = self.transcript.lines_mut().read(line) {
            self.transcript.event(&kind, event);
        }
    }

    /// The transcript so far.
    pub fn transcript(&self) -> &T {
        &self.transcript
    }

    pub fn finish(self) -> T {
        self.transcript
    }
}

/// Field access that treats a value of the wrong type as absent, so one odd field never costs
/// the rest of an event.
fn str_field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str)
}

fn object_field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Map<String, Value>> {
    object.get(key).and_then(Value::as_object)
}

fn u64_field(object: &Map<String, Value>, key: &str) -> Option<u64> {
    object.get(key).and_then(Value::as_u64)
}

/// A whole number of seconds or a count, written as an integer, a float or a numeric string.
fn i64_field(object: &Map<String, Value>, key: &str) -> Option<i64> {
    match object.get(key)? {
        Value::Number(number) => number
            .as_i64()
            .or_else(|| number.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_lines_into_events_skips_and_bad_lines() {
        let mut stats = LineStats::default();
        let lines = [
            "",
            "   ",
            "Reading prompt from stdin...",
            "[1, 2]",
            "{\"type\":\"system\"}\r",
            "\u{feff}{\"type\":\"x\"}",
            "{\"type\":3}",
            "{\"no_type\":true}",
            "{broken",
            "{\"type\":\"a\"} trailing",
        ];
        let kinds: Vec<String> = lines
            .iter()
            .filter_map(|line| stats.read(line).map(|(kind, _)| kind))
            .collect();
        assert_eq!(kinds, ["system", "x"]);
        assert_eq!(
            stats,
            LineStats {
                events: 2,
                unknown: 0,
                skipped: 4,
                bad: 4
            }
        );
    }

    #[test]
    fn numbers_of_any_json_spelling_are_read() {
        let object: Map<String, Value> =
            serde_json::from_str(r#"{"a": 17, "b": 17.9, "c": "17", "d": true, "e": -3}"#).unwrap();
        assert_eq!(i64_field(&object, "a"), Some(17));
        assert_eq!(i64_field(&object, "b"), Some(17));
        assert_eq!(i64_field(&object, "c"), Some(17));
        assert_eq!(i64_field(&object, "d"), None);
        assert_eq!(i64_field(&object, "e"), Some(-3));
        assert_eq!(u64_field(&object, "e"), None);
    }
}
