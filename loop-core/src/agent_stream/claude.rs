//! Claude Code's `--output-format stream-json --verbose` output, and how a call to it ended.
//!
//! Every line is a JSON object with a `type`: `system` (the `init` one names the session and
//! model), `assistant` (the answer's text blocks, or a synthetic message reporting an API
//! error), `user` (tool results: read for nothing, since a tool's output quoting an error must
//! never pass for one), `stream_event`, `rate_limit_event`, and a last `result`.

use serde_json::{Map, Value};

use super::error_text::{self, Agent, Signal};
use super::{CallEnd, LineStats, i64_field, object_field, str_field, u64_field};

/// Reads Claude Code's stream one line at a time.
#[derive(Clone, Debug, Default)]
pub struct ClaudeStream {
    transcript: ClaudeTranscript,
}

/// Everything of a Claude Code call's output that the runtime uses.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClaudeTranscript {
    /// From the `init` event, replaced by the `result`'s.
    pub session_id: Option<String>,
    /// From the `init` event.
    pub model: Option<String>,
    /// The text of each assistant message that had text, in order (a message's text blocks
    /// joined with newlines); synthetic error messages are not among them.
    pub assistant_texts: Vec<String>,
    /// The last synthetic assistant message reporting an API error.
    pub api_error: Option<ApiErrorMessage>,
    /// The last `rate_limit_event`, whatever its status.
    pub rate_limit: Option<RateLimit>,
    /// The last `rate_limit_event` whose status is `rejected`.
    pub rejected_rate_limit: Option<RateLimit>,
    /// The `result` event, if the call got that far.
    pub result: Option<ClaudeResult>,
    pub lines: LineStats,
}

/// An API error the CLI reported as an assistant message (`model: "<synthetic>"`,
/// `is_api_error_message: true`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiErrorMessage {
    pub text: String,
    /// The event's `error` field (`rate_limit`, `oauth_org_not_allowed`, …), if any.
    pub error: Option<String>,
}

/// A `rate_limit_event`'s `rate_limit_info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub status: RateLimitStatus,
    /// `resetsAt`, Unix seconds.
    pub resets_at_s: Option<i64>,
    /// `rateLimitType`: `five_hour`, `seven_day`, ….
    pub limit_type: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RateLimitStatus {
    Allowed,
    AllowedWarning,
    Rejected,
    Other(String),
}

impl RateLimitStatus {
    fn parse(text: &str) -> RateLimitStatus {
        match text {
            "allowed" => RateLimitStatus::Allowed,
            "allowed_warning" => RateLimitStatus::AllowedWarning,
            "rejected" => RateLimitStatus::Rejected,
            other => RateLimitStatus::Other(other.to_owned()),
        }
    }
}

/// The `result` event.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaudeResult {
    pub subtype: Option<ResultSubtype>,
    pub is_error: bool,
    /// The final text: the answer, or an error message.
    pub result: Option<String>,
    pub session_id: Option<String>,
    pub num_turns: Option<u64>,
    pub duration_ms: Option<u64>,
    pub total_cost_usd: Option<f64>,
    pub usage: Option<ClaudeUsage>,
    /// Why the session ended (`completed`, `api_error`, …), in versions that say.
    pub terminal_reason: Option<String>,
    /// The HTTP status of the API error that ended the session, in versions that say.
    pub api_error_status: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResultSubtype {
    Success,
    ErrorMaxTurns,
    ErrorDuringExecution,
    ErrorMaxBudgetUsd,
    Other(String),
}

impl ResultSubtype {
    fn parse(text: &str) -> ResultSubtype {
        match text {
            "success" => ResultSubtype::Success,
            "error_max_turns" => ResultSubtype::ErrorMaxTurns,
            "error_during_execution" => ResultSubtype::ErrorDuringExecution,
            "error_max_budget_usd" => ResultSubtype::ErrorMaxBudgetUsd,
            other => ResultSubtype::Other(other.to_owned()),
        }
    }
}

/// The `result`'s `usage`; a missing count is 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClaudeUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

impl ClaudeStream {
    pub fn new() -> ClaudeStream {
        ClaudeStream::default()
    }

    /// A line too long to be kept whole (over 64 MiB): counted as bad, never parsed in part.
    pub fn feed_oversized(&mut self) {
        self.transcript.lines.bad = self.transcript.lines.bad.saturating_add(1);
    }

    /// Reads one line of stdout (with or without its `\r`). Never fails: what cannot be read is
    /// counted in [`ClaudeTranscript::lines`].
    pub fn feed(&mut self, line: &str) {
        let t = &mut self.transcript;
        let Some((kind, event)) = t.lines.read(line) else {
            return;
        };
        match kind.as_str() {
            "system" => {
                if str_field(&event, "subtype") == Some("init") {
                    t.session_id = str_field(&event, "session_id").map(str::to_owned);
                    t.model = str_field(&event, "model").map(str::to_owned);
                }
            }
            "assistant" => t.assistant(&event),
            "rate_limit_event" => {
                let info = object_field(&event, "rate_limit_info");
                let limit = RateLimit {
                    status: RateLimitStatus::parse(
                        info.and_then(|info| str_field(info, "status"))
                            .unwrap_or_default(),
                    ),
                    resets_at_s: info.and_then(|info| i64_field(info, "resetsAt")),
                    limit_type: info
                        .and_then(|info| str_field(info, "rateLimitType"))
                        .map(str::to_owned),
                };
                if limit.status == RateLimitStatus::Rejected {
                    t.rejected_rate_limit = Some(limit.clone());
                }
                t.rate_limit = Some(limit);
            }
            "result" => {
                let result = ClaudeResult::read(&event);
                if result.session_id.is_some() {
                    t.session_id.clone_from(&result.session_id);
                }
                t.result = Some(result);
            }
            "user" | "stream_event" => {}
            _ => t.lines.unknown += 1,
        }
    }

    /// The transcript so far; `result.is_some()` once the final event arrived.
    pub fn transcript(&self) -> &ClaudeTranscript {
        &self.transcript
    }

    pub fn finish(self) -> ClaudeTranscript {
        self.transcript
    }
}

impl ClaudeTranscript {
    /// The answer, for completion detection: the `result` text when there is one, else the
    /// assistant messages' text, each message on its own line.
    pub fn answer(&self) -> String {
        match self
            .result
            .as_ref()
            .and_then(|result| result.result.as_ref())
        {
            Some(text) => text.clone(),
            None => self.assistant_texts.join("\n"),
        }
    }

    fn assistant(&mut self, event: &Map<String, Value>) {
        let message = object_field(event, "message");
        let synthetic = message.and_then(|message| str_field(message, "model"))
            == Some("<synthetic>")
            || [Some(event), message]
                .into_iter()
                .flatten()
                .any(|object| object.get("is_api_error_message") == Some(&Value::Bool(true)));
        let text = message.map(text_of).unwrap_or_default();
        if synthetic {
            self.api_error = Some(ApiErrorMessage {
                text,
                error: str_field(event, "error").map(str::to_owned),
            });
        } else if !text.is_empty() {
            self.assistant_texts.push(text);
        }
    }
}

/// A message's text blocks joined with newlines (`content` may also be a plain string).
fn text_of(message: &Map<String, Value>) -> String {
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(Value::as_object)
            .filter(|block| str_field(block, "type") == Some("text"))
            .filter_map(|block| str_field(block, "text"))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

impl ClaudeResult {
    fn read(event: &Map<String, Value>) -> ClaudeResult {
        let text = |key| str_field(event, key).map(str::to_owned);
        ClaudeResult {
            subtype: str_field(event, "subtype").map(ResultSubtype::parse),
            is_error: event.get("is_error") == Some(&Value::Bool(true)),
            result: text("result"),
            session_id: text("session_id"),
            num_turns: u64_field(event, "num_turns"),
            duration_ms: u64_field(event, "duration_ms"),
            total_cost_usd: event.get("total_cost_usd").and_then(Value::as_f64),
            usage: object_field(event, "usage").map(|usage| ClaudeUsage {
                input_tokens: u64_field(usage, "input_tokens").unwrap_or(0),
                output_tokens: u64_field(usage, "output_tokens").unwrap_or(0),
                cache_creation_input_tokens: u64_field(usage, "cache_creation_input_tokens")
                    .unwrap_or(0),
                cache_read_input_tokens: u64_field(usage, "cache_read_input_tokens").unwrap_or(0),
            }),
            terminal_reason: text("terminal_reason"),
            api_error_status: i64_field(event, "api_error_status")
                .and_then(|status| u16::try_from(status).ok()),
        }
    }
}

/// How a Claude Code call ended, in the order `design/agents.md` gives:
///
/// 1. a `rate_limit_event` with status `rejected`: the usage limit, until its `resetsAt`;
/// 2. an errored `result`: the turn or budget cap by `subtype`; else by the text of the result,
///    of a synthetic API error message and of the stderr tail (a usage limit in any of them
///    first), then by `api_error_status`;
/// 3. a `result` that is not an error is a success, whatever the exit code: once the final
///    answer is out, the process ending badly (an MCP server failing at exit, or the runtime
///    stopping it a grace period after the `result`) does not undo it. So the caller passes
///    the exit code it saw, `None` for a signal, and need not say why it stopped the process;
/// 4. no `result`: a synthetic API error or the stderr tail is read as in 2; failing that, an
///    exit code 0 with answer text is a success, and anything else a failed attempt (crashed
///    or killed), its reason ending with the stderr tail.
///
/// A `result` with `is_error: false` whose text starts like one of the CLI's error messages
/// ("Claude AI usage limit reached|…", "API Error: …") counts as errored: older versions
/// reported a usage limit that way with exit code 0. The `error_*` subtypes are errors even
/// without `is_error`.
pub fn classify(
    transcript: &ClaudeTranscript,
    exit_code: Option<i32>,
    stderr_tail: &str,
    now_ms: i64,
) -> CallEnd {
    let agent = Agent::Claude;
    let api_error = transcript
        .api_error
        .as_ref()
        .map_or("", |error| error.text.as_str());
    if let Some(limit) = &transcript.rejected_rate_limit {
        // A clean answer that came despite the rejection says nothing about the limit.
        let result_text = transcript
            .result
            .as_ref()
            .filter(|result| {
                result.is_error
                    || result
                        .result
                        .as_deref()
                        .is_some_and(error_text::is_error_message)
            })
            .and_then(|result| result.result.as_deref())
            .unwrap_or("");
        let said = [api_error, result_text]
            .into_iter()
            .find(|text| !text.trim().is_empty());
        let reset_ms = limit
            .resets_at_s
            .and_then(|seconds| seconds.checked_mul(1000))
            .or_else(
                || match said.and_then(|text| error_text::read(text, now_ms)) {
                    Some(Signal::UsageLimit { reset_ms }) => reset_ms,
                    _ => None,
                },
            );
        let said = said.map_or_else(
            || {
                let kind = limit.limit_type.as_deref().unwrap_or("usage");
                format!("rate_limit_event: {kind} limit rejected")
            },
            str::to_owned,
        );
        return error_text::usage_limit(agent, reset_ms, &said, now_ms);
    }

    if let Some(result) = &transcript.result {
        let text = result.result.as_deref().unwrap_or("");
        match result.subtype {
            Some(ResultSubtype::ErrorMaxTurns) => {
                let turns = result
                    .num_turns
                    .map_or_else(String::new, |turns| format!(" after {turns} turns"));
                return failed(format!("Claude Code stopped at its turn limit{turns}"));
            }
            Some(ResultSubtype::ErrorMaxBudgetUsd) => {
                let spent = result
                    .total_cost_usd
                    .map_or_else(String::new, |cost| format!(" (${cost:.2} spent)"));
                return failed(format!("Claude Code stopped at its budget limit{spent}"));
            }
            _ => {}
        }
        let during_execution = result.subtype == Some(ResultSubtype::ErrorDuringExecution);
        if !(result.is_error || during_execution || error_text::is_error_message(text)) {
            return CallEnd::Success;
        }
        let texts = [text, api_error, stderr_tail];
        if let Some(end) = error_text::read_all(agent, &texts, result.api_error_status, now_ms) {
            return end;
        }
        let head = match (&result.terminal_reason, during_execution) {
            (_, true) => "Claude Code failed during execution".to_owned(),
            (Some(reason), false) => format!("Claude Code reported an error ({reason})"),
            (None, false) => "Claude Code reported an error".to_owned(),
        };
        let said = texts
            .into_iter()
            .find(|text| !text.trim().is_empty())
            .unwrap_or("");
        return failed(error_text::quoting(head, said));
    }

    if let Some(end) = error_text::read_all(agent, &[api_error], None, now_ms) {
        return end;
    }
    if !api_error.trim().is_empty() {
        return failed(error_text::quoting(
            "Claude Code reported an API error".to_owned(),
            api_error,
        ));
    }
    if exit_code == Some(0) && !transcript.assistant_texts.is_empty() {
        return CallEnd::Success;
    }
    if let Some(end) = error_text::read_all(agent, &[stderr_tail], None, now_ms) {
        return end;
    }
    error_text::died_without_final_event(agent, "result", exit_code, stderr_tail)
}

fn failed(reason: String) -> CallEnd {
    CallEnd::Failed { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000_000;

    fn transcript(lines: &[&str]) -> ClaudeTranscript {
        let mut stream = ClaudeStream::new();
        for line in lines {
            stream.feed(line);
        }
        stream.finish()
    }

    const INIT: &str = r#"{"type":"system","subtype":"init","session_id":"s-1","model":"claude-sonnet-4-5","cwd":"/w","tools":["Bash"],"permissionMode":"bypassPermissions"}"#;

    #[test]
    fn collects_session_answer_cost_and_usage() {
        let t = transcript(&[
            INIT,
            r#"{"type":"assistant","message":{"model":"claude-sonnet-4-5","content":[{"type":"thinking","thinking":"hm"},{"type":"text","text":"Looking."},{"type":"tool_use","id":"t1","name":"Bash","input":{}}]}}"#,
            r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1","content":"API Error: 529 overloaded"}]}}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"Done."},{"type":"text","text":"<promise>COMPLETE</promise>"}]}}"#,
            r#"{"type":"result","subtype":"success","is_error":false,"session_id":"s-2","num_turns":2,"duration_ms":900,"total_cost_usd":0.25,"usage":{"input_tokens":10,"output_tokens":20,"cache_read_input_tokens":30}}"#,
        ]);
        assert_eq!(t.session_id.as_deref(), Some("s-2"));
        assert_eq!(t.model.as_deref(), Some("claude-sonnet-4-5"));
        assert_eq!(t.answer(), "Looking.\nDone.\n<promise>COMPLETE</promise>");
        let result = t.result.as_ref().unwrap();
        assert_eq!(result.subtype, Some(ResultSubtype::Success));
        assert_eq!(result.total_cost_usd, Some(0.25));
        assert_eq!(
            result.usage,
            Some(ClaudeUsage {
                input_tokens: 10,
                output_tokens: 20,
                cache_creation_input_tokens: 0,
                cache_read_input_tokens: 30,
            })
        );
        assert_eq!(classify(&t, Some(0), "", NOW), CallEnd::Success);
    }

    #[test]
    fn the_result_text_is_the_answer_when_present() {
        let t = transcript(&[
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"thinking aloud"}]}}"#,
            r#"{"type":"result","subtype":"success","is_error":false,"result":"final"}"#,
        ]);
        assert_eq!(t.answer(), "final");
    }

    #[test]
    fn a_clean_result_is_a_success_however_the_process_ended() {
        let t = transcript(&[
            INIT,
            r#"{"type":"result","subtype":"success","is_error":false,"result":"ok"}"#,
        ]);
        for exit in [Some(0), Some(1), Some(143), None] {
            assert_eq!(
                classify(&t, exit, "Killed", NOW),
                CallEnd::Success,
                "{exit:?}"
            );
        }
    }

    #[test]
    fn a_rejected_rate_limit_wins_over_everything_else() {
        let t = transcript(&[
            INIT,
            r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed_warning","resetsAt":1790003600,"rateLimitType":"seven_day"}}"#,
            r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1790010000,"rateLimitType":"five_hour"}}"#,
            r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed","resetsAt":1790020000,"rateLimitType":"seven_day"}}"#,
            r#"{"type":"result","subtype":"success","is_error":false,"result":"ok"}"#,
        ]);
        assert_eq!(
            t.rate_limit.as_ref().map(|limit| &limit.status),
            Some(&RateLimitStatus::Allowed)
        );
        let end = classify(&t, Some(0), "", NOW);
        assert_eq!(end.as_str(), "usage_limit");
        assert!(matches!(
            end,
            CallEnd::UsageLimit {
                until_ms: 1_790_010_060_000,
                ..
            }
        ));
        assert!(end.reason().contains("five_hour"), "{}", end.reason());
    }

    #[test]
    fn a_rejection_without_reset_time_reads_it_from_the_message() {
        let t = transcript(&[
            r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected"}}"#,
            r#"{"type":"assistant","message":{"model":"<synthetic>","content":[{"type":"text","text":"You've hit your limit · resets 5pm (Europe/Lisbon)"}]},"is_api_error_message":true,"error":"rate_limit"}"#,
        ]);
        assert_eq!(
            t.api_error.as_ref().unwrap().error.as_deref(),
            Some("rate_limit")
        );
        assert!(t.assistant_texts.is_empty());
        assert!(matches!(
            classify(&t, Some(1), "", NOW),
            CallEnd::UsageLimit {
                until_ms: 1_790_006_460_000,
                ..
            }
        ));
    }

    #[test]
    fn errors_are_read_by_subtype_status_and_text() {
        let result = |fields: &str| transcript(&[&format!(r#"{{"type":"result",{fields}}}"#)]);
        let cases = [
            (
                r#""subtype":"error_max_turns","is_error":true,"num_turns":4"#,
                "failed",
                "turn limit after 4 turns",
            ),
            (
                r#""subtype":"error_max_turns","is_error":false"#,
                "failed",
                "turn limit",
            ),
            (
                r#""subtype":"error_max_budget_usd","is_error":true,"total_cost_usd":2.5"#,
                "failed",
                "$2.50",
            ),
            (
                r#""subtype":"success","is_error":true,"api_error_status":429,"result":"You've hit your limit · resets 5pm (Europe/Lisbon)""#,
                "usage_limit",
                "hit your limit",
            ),
            (
                r#""subtype":"success","is_error":true,"api_error_status":529,"result":"API Error: Repeated 529 Overloaded errors""#,
                "transient",
                "overloaded",
            ),
            (
                r#""subtype":"success","is_error":true,"api_error_status":403,"terminal_reason":"api_error","result":"Your organization has disabled access""#,
                "auth",
                "(403)",
            ),
            (
                r#""subtype":"success","is_error":true,"result":"Not logged in · Please run /login""#,
                "auth",
                "run `claude` once and log in",
            ),
            (
                r#""subtype":"error_during_execution","is_error":true"#,
                "failed",
                "during execution",
            ),
            (
                r#""subtype":"success","is_error":true,"terminal_reason":"prompt_too_long","result":"Prompt is too long""#,
                "failed",
                "(prompt_too_long) (Prompt is too long)",
            ),
            (
                r#""subtype":"success","is_error":false,"result":"Claude AI usage limit reached|1790006400""#,
                "usage_limit",
                "2026-09-21T16:00:00.000Z",
            ),
        ];
        for (fields, kind, part) in cases {
            let end = classify(&result(fields), Some(1), "", NOW);
            assert_eq!(end.as_str(), kind, "{fields}: {end:?}");
            assert!(end.reason().contains(part), "{fields}: {end:?}");
        }
    }

    #[test]
    fn without_a_result_the_exit_and_stderr_decide() {
        let started = transcript(&[
            INIT,
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"working"}]}}"#,
        ]);
        assert_eq!(classify(&started, Some(0), "", NOW), CallEnd::Success);
        let end = classify(&started, Some(137), "out of memory\n", NOW);
        assert_eq!(end.as_str(), "failed");
        assert!(end.reason().contains("exit code 137"), "{end:?}");
        assert!(end.reason().ends_with("out of memory"), "{end:?}");
        let end = classify(&started, None, "", NOW);
        assert!(end.reason().contains("signal"), "{end:?}");
        let silent = transcript(&[INIT]);
        assert_eq!(classify(&silent, Some(0), "", NOW).as_str(), "failed");
        assert_eq!(
            classify(&silent, Some(1), "Invalid API key · Please run /login", NOW).as_str(),
            "auth"
        );
    }

    #[test]
    fn odd_fields_cost_the_field_not_the_event() {
        let t = transcript(&[
            r#"{"type":"system","subtype":"init","session_id":7,"model":"m"}"#,
            r#"{"type":"result","subtype":5,"is_error":"yes","result":["x"],"num_turns":-1,"total_cost_usd":"1","usage":{"input_tokens":"9","output_tokens":3},"api_error_status":70000}"#,
            r#"{"type":"brand_new_event","anything":1}"#,
            r#"{"type":"assistant","message":"not an object"}"#,
        ]);
        assert_eq!(t.model.as_deref(), Some("m"));
        assert_eq!(t.session_id, None);
        let result = t.result.as_ref().unwrap();
        assert_eq!(result.subtype, None);
        assert!(!result.is_error);
        assert_eq!(result.result, None);
        assert_eq!(result.num_turns, None);
        assert_eq!(result.api_error_status, None);
        assert_eq!(result.usage.unwrap().output_tokens, 3);
        assert_eq!(t.lines.unknown, 1);
        assert_eq!(t.lines.events, 4);
    }
}
