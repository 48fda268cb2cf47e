//! Codex's `codex exec --json` output, and how a call to it ended.
//!
//! JSON Lines: `thread.started {thread_id}`, `turn.started`, `turn.completed {usage}`,
//! `turn.failed {error}`, `item.started|updated|completed {item}` (the answer is the last
//! `agent_message` item's text) and `error`. Codex reports tokens only, no dollar cost. A usage
//! limit arrives as an error object of type `usage_limit_reached` with `resets_at` (Unix
//! seconds) and `resets_in_seconds`, at any depth of an `error` or `turn.failed` event or as
//! JSON quoted inside its message, or only as text ("try again in 2 days 17 hours").

use serde_json::{Map, Value};

use super::error_text::{self, Agent};
use super::{
    CallEnd, CallFigures, LineStats, Stream, Transcript, When, i64_field, object_field, str_field,
    u64_field,
};
use crate::event::{AgentDetail, Tokens};

#[cfg(test)]
mod tests;

/// How deep into an error event a `usage_limit_reached` object is looked for.
const ERROR_DEPTH: usize = 6;

/// Reads `codex exec --json` output one line at a time.
pub type CodexStream = Stream<CodexTranscript>;

/// Everything of a Codex call's output that the runtime uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodexTranscript {
    pub thread_id: Option<String>,
    pub turns_started: u32,
    pub turns_completed: u32,
    /// Summed over every `turn.completed`.
    pub usage: CodexUsage,
    /// The text of the last `agent_message` item.
    pub answer: Option<String>,
    /// Each command, file change or tool call started, as people read it: `Shell(cargo
    /// test)`, `Edit(src/lib.rs)`.
    pub tool_calls: Vec<String>,
    /// What each command answered, on one line, as it completed.
    pub tool_results: Vec<String>,
    /// Messages of `error` and `turn.failed` events since the last completed turn, oldest
    /// first: the errors the call ended with.
    pub errors: Vec<String>,
    /// Messages of errors a later turn completed after (reconnections, retries).
    pub recovered_errors: Vec<String>,
    /// The `usage_limit_reached` error among [`CodexTranscript::errors`], if there is one.
    pub usage_limit: Option<UsageLimitError>,
    pub lines: LineStats,
}

/// A `turn.completed`'s `usage`, or their sum; a missing count is 0. Codex counts the cached
/// input and the input written to the cache (`cache_write_input_tokens`, newer versions) in
/// `input_tokens`, and the reasoning in `output_tokens`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodexUsage {
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_output_tokens: u64,
}

impl CodexUsage {
    /// As recorded: the counts as Codex gives them, none added twice.
    pub fn tokens(self) -> Tokens {
        Tokens {
            input: self.input_tokens,
            output: self.output_tokens,
            cached: self.cached_input_tokens,
            cache_write: self.cache_write_input_tokens,
            reasoning: self.reasoning_output_tokens,
        }
    }
}

/// An error object of type `usage_limit_reached`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageLimitError {
    /// `resets_at`, Unix seconds.
    pub resets_at_s: Option<i64>,
    /// `resets_in_seconds`, counted from when the error was written.
    pub resets_in_s: Option<i64>,
}

impl Transcript for CodexTranscript {
    fn lines_mut(&mut self) -> &mut LineStats {
        &mut self.lines
    }

    fn event(&mut self, kind: &str, event: Map<String, Value>) {
        let t = self;
        match kind {
            "thread.started" => t.thread_id = str_field(&event, "thread_id").map(str::to_owned),
            "turn.started" => t.turns_started = t.turns_started.saturating_add(1),
            "turn.completed" => {
                t.turns_completed = t.turns_completed.saturating_add(1);
                if let Some(usage) = object_field(&event, "usage") {
                    let count = |key| u64_field(usage, key).unwrap_or(0);
                    let sum = &mut t.usage;
                    sum.input_tokens = sum.input_tokens.saturating_add(count("input_tokens"));
                    sum.cached_input_tokens = sum
                        .cached_input_tokens
                        .saturating_add(count("cached_input_tokens"));
                    sum.cache_write_input_tokens = sum
                        .cache_write_input_tokens
                        .saturating_add(count("cache_write_input_tokens"));
                    sum.output_tokens = sum.output_tokens.saturating_add(count("output_tokens"));
                    sum.reasoning_output_tokens = sum
                        .reasoning_output_tokens
                        .saturating_add(count("reasoning_output_tokens"));
                }
                t.recovered_errors.append(&mut t.errors);
                t.usage_limit = None;
            }
            "turn.failed" | "error" => {
                let message = error_message(&event);
                if t.errors.last() != Some(&message) {
                    t.errors.push(message);
                }
                let object = Value::Object(event);
                if let Some(limit) = find_usage_limit(&object, ERROR_DEPTH) {
                    t.usage_limit = Some(limit);
                }
            }
            "item.started" | "item.updated" | "item.completed" => {
                let Some(item) = object_field(&event, "item") else {
                    return;
                };
                match str_field(item, "type") {
                    Some("agent_message") => {
                        if let Some(text) = str_field(item, "text") {
                            t.answer = Some(text.to_owned());
                        }
                    }
                    // A tool call is shown once, when it starts (or completes, for the kinds
                    // that are only reported done).
                    Some(kind) if kind != "reasoning" && kind != "error" => {
                        let first_sight = kind == "file_change"
                            || kind == "web_search"
                            || str_field(&event, "type") == Some("item.started");
                        if first_sight && let Some(call) = tool_call(kind, item) {
                            t.tool_calls.push(call);
                        }
                        if kind == "command_execution"
                            && str_field(&event, "type") == Some("item.completed")
                        {
                            let output = str_field(item, "aggregated_output").unwrap_or("");
                            let code = item.get("exit_code").and_then(Value::as_i64);
                            let summary = super::tool_lines::result_summary(output, false);
                            t.tool_results.push(match code {
                                Some(0) | None => summary,
                                Some(code) => format!("exit {code}: {summary}"),
                            });
                        }
                    }
                    _ => {}
                }
            }
            _ => t.lines.unknown += 1,
        }
    }
}

impl CodexTranscript {
    /// Tokens and the thread, whatever the call's end (Codex reports no dollar cost).
    pub fn figures(&self) -> CallFigures {
        let used = self.turns_completed > 0;
        CallFigures {
            cost_usd: None,
            cost_estimated: false,
            tokens: used.then(|| self.usage.tokens()),
            detail: AgentDetail {
                session_id: self.thread_id.clone(),
                num_turns: used.then_some(u64::from(self.turns_completed)),
                ..AgentDetail::default()
            },
        }
    }
}

/// `Shell(cargo test)`, `Edit(src/lib.rs)`, `Tool(server.tool)`, `Search(query)`: an item a
/// person watching wants to see, by its type.
fn tool_call(kind: &str, item: &Map<String, Value>) -> Option<String> {
    let shown = |name: &str, argument: &str| {
        format!("{name}({})", super::tool_lines::one_line(argument, 80))
    };
    match kind {
        "command_execution" => str_field(item, "command").map(|command| shown("Shell", command)),
        "file_change" => {
            let paths: Vec<&str> = match item.get("changes") {
                Some(Value::Array(changes)) => changes
                    .iter()
                    .filter_map(Value::as_object)
                    .filter_map(|change| str_field(change, "path"))
                    .collect(),
                _ => Vec::new(),
            };
            Some(shown("Edit", &paths.join(", ")))
        }
        "mcp_tool_call" => {
            let server = str_field(item, "server").unwrap_or("mcp");
            let tool = str_field(item, "tool").unwrap_or("tool");
            Some(format!("Tool({server}.{tool})"))
        }
        "web_search" => str_field(item, "query").map(|query| shown("Search", query)),
        _ => None,
    }
}

/// The message of an `error` or `turn.failed` event: its `message`, or its `error`'s, or the
/// `error` object itself as JSON when it has none.
fn error_message(event: &Map<String, Value>) -> String {
    if let Some(message) = str_field(event, "message") {
        return message.to_owned();
    }
    match event.get("error") {
        Some(Value::String(message)) => message.clone(),
        Some(Value::Object(error)) => match str_field(error, "message") {
            Some(message) => message.to_owned(),
            None => Value::Object(error.clone()).to_string(),
        },
        _ => String::new(),
    }
}

/// A `usage_limit_reached` error object anywhere in `value`, including JSON quoted in a string.
fn find_usage_limit(value: &Value, depth: usize) -> Option<UsageLimitError> {
    if depth == 0 {
        return None;
    }
    match value {
        Value::Object(object) if str_field(object, "type") == Some("usage_limit_reached") => {
            Some(UsageLimitError {
                resets_at_s: i64_field(object, "resets_at"),
                resets_in_s: i64_field(object, "resets_in_seconds"),
            })
        }
        Value::Object(object) => object
            .values()
            .find_map(|value| find_usage_limit(value, depth - 1)),
        Value::Array(items) => items
            .iter()
            .find_map(|value| find_usage_limit(value, depth - 1)),
        Value::String(text) if text.contains("usage_limit_reached") => {
            let start = text.find('{')?;
            let quoted = serde_json::Deserializer::from_str(&text[start..])
                .into_iter::<Value>()
                .next()?
                .ok()?;
            find_usage_limit(&quoted, depth - 1)
        }
        _ => None,
    }
}

/// How a Codex call ended:
///
/// 1. a `usage_limit_reached` error: the usage limit, until `resets_at`, or `resets_in_seconds`
///    from now;
/// 2. errors not followed by a completed turn: read from their messages (the last first) and
///    the stderr tail: a usage limit ("try again in 2 days 17 hours 14 minutes"), a login
///    problem, rate limiting or an overloaded server; else a failed attempt;
/// 3. a completed turn and no error after it: a success, whatever the exit code (as for
///    Claude: the caller passes the code it saw, `None` for a signal);
/// 4. otherwise an exit code 0 with an answer is a success, and anything else is read from the
///    stderr tail or is a failed attempt whose reason ends with the stderr tail.
pub fn classify(
    transcript: &CodexTranscript,
    exit_code: Option<i32>,
    stderr_tail: &str,
    when: &When,
) -> CallEnd {
    let now_ms = when.now_ms;
    let agent = Agent::Codex;
    let last_error = transcript.errors.last().map_or("", String::as_str);
    if let Some(limit) = transcript.usage_limit {
        let reset_ms = limit
            .resets_at_s
            .and_then(|seconds| seconds.checked_mul(1000))
            .or_else(|| {
                let seconds = limit.resets_in_s?;
                Some(now_ms.saturating_add(seconds.checked_mul(1000)?))
            });
        return error_text::usage_limit(agent, reset_ms, None, last_error, now_ms);
    }
    if !transcript.errors.is_empty() {
        let mut texts: Vec<&str> = transcript.errors.iter().rev().map(String::as_str).collect();
        texts.push(stderr_tail);
        return error_text::read_all(agent, &texts, None, when).unwrap_or_else(|| {
            CallEnd::Failed {
                reason: error_text::quoting("Codex reported an error".to_owned(), last_error),
            }
        });
    }
    let answered = transcript
        .answer
        .as_ref()
        .is_some_and(|answer| !answer.trim().is_empty());
    if transcript.turns_completed > 0 || (exit_code == Some(0) && answered) {
        return CallEnd::Success;
    }
    if let Some(end) = error_text::read_all(agent, &[stderr_tail], None, when) {
        return end;
    }
    error_text::died_without_final_event(agent, "turn.completed", exit_code, stderr_tail)
}

/// The rate-limit window a Codex session last reported, from its rollout file
/// (`$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<time>-<thread id>.jsonl`): `codex exec --json`
/// prints none on stdout, but every `event_msg` of `payload.type` `token_count` in the rollout
/// carries `rate_limits {primary, secondary}`, each `{used_percent, window_minutes, resets_at}`
/// (older versions: `resets_in_seconds`, counted from the line's `timestamp`, else from
/// `now_ms`). Of the two windows, the more used one is the account's constraint. Lines that
/// are not JSON, or not such events, are skipped.
pub fn rollout_rate_limit(text: &str, now_ms: i64) -> Option<crate::event::RateLimitSeen> {
    rollout_windows(text, now_ms).into_iter().max_by(|a, b| {
        let used = |w: &crate::event::RateLimitSeen| w.utilization.unwrap_or(0.0);
        used(a).total_cmp(&used(b))
    })
}

/// Both windows of the rollout's last `token_count` (five-hour and weekly), as
/// [`rollout_rate_limit`] reads them: the account's windows are tracked apart.
pub fn rollout_windows(text: &str, now_ms: i64) -> Vec<crate::event::RateLimitSeen> {
    let last = text.lines().rev().find_map(|line| {
        let event: Value = serde_json::from_str(line.trim()).ok()?;
        let payload = event.get("payload")?;
        if event.get("type")?.as_str()? != "event_msg"
            || payload.get("type")?.as_str()? != "token_count"
        {
            return None;
        }
        let limits = payload.get("rate_limits")?.as_object()?;
        let at_ms = event
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(crate::time::parse_rfc3339_ms)
            .unwrap_or(now_ms);
        let windows: Vec<crate::event::RateLimitSeen> = ["primary", "secondary"]
            .iter()
            .filter_map(|name| window(limits.get(*name)?.as_object()?, at_ms))
            .collect();
        (!windows.is_empty()).then_some(windows)
    });
    last.unwrap_or_default()
}

/// One window of a `token_count`'s `rate_limits`, in the shape Claude Code's are recorded.
fn window(window: &Map<String, Value>, at_ms: i64) -> Option<crate::event::RateLimitSeen> {
    let used = window.get("used_percent")?.as_f64()?;
    if !used.is_finite() {
        return None;
    }
    let utilization = (used / 100.0).clamp(0.0, 1.0);
    let name = match window.get("window_minutes").and_then(Value::as_u64) {
        Some(300) => "five_hour".to_owned(),
        Some(10_080) => "seven_day".to_owned(),
        Some(minutes) => format!("{minutes}_minutes"),
        None => "window".to_owned(),
    };
    let resets_at_ms = match (
        window.get("resets_at").and_then(Value::as_i64),
        window.get("resets_in_seconds").and_then(Value::as_i64),
    ) {
        (Some(at), _) => at.checked_mul(1000),
        (None, Some(seconds)) => seconds
            .checked_mul(1000)
            .and_then(|ms| at_ms.checked_add(ms)),
        (None, None) => None,
    };
    Some(crate::event::RateLimitSeen {
        status: if utilization >= 1.0 {
            "rejected"
        } else {
            "allowed"
        }
        .to_owned(),
        window: Some(name),
        resets_at_ms,
        utilization: Some(utilization),
        overage_in_use: None,
    })
}
