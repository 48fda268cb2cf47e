//! Claude Code's `--output-format stream-json --verbose` output, and how a call to it ended.
//!
//! Every line is a JSON object with a `type`: `system` (the `init` one names the session and
//! model), `assistant` (the answer's text blocks, or a synthetic message reporting an API
//! error), `user` (tool results: read for nothing, since a tool's output quoting an error must
//! never pass for one), `stream_event`, `rate_limit_event`, and a last `result`.

use serde_json::{Map, Value};

use std::collections::BTreeMap;

use super::error_text::{self, Agent, Signal};
use super::{CallEnd, CallFigures, LineStats, When, i64_field, object_field, str_field, u64_field};
use crate::event::{AgentDetail, RateLimitSeen, Tokens};

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
    /// Every model named by the `init` event, the assistant messages and the `result`'s
    /// `modelUsage`, in the order first seen.
    pub models: Vec<String>,
    /// The text of each assistant message that had text, in order (a message's text blocks
    /// joined with newlines); synthetic error messages are not among them.
    pub assistant_texts: Vec<String>,
    /// Each tool the agent called, as people read it: `Bash(cargo test)`, `Edit(src/lib.rs)`.
    pub tool_calls: Vec<String>,
    /// What each tool call answered, on one line (`3 passed … +12 lines`, `Error: …`), in the
    /// order the results came.
    pub tool_results: Vec<String>,
    /// Token counts of the assistant messages so far, by message id (the stream repeats a
    /// message's usage with each of its content blocks): what a long call has used before its
    /// `result` says.
    pub usage_by_message: BTreeMap<String, ClaudeUsage>,
    /// The last synthetic assistant message reporting an API error.
    pub api_error: Option<ApiErrorMessage>,
    /// The last `rate_limit_event`, whatever its status.
    pub rate_limit: Option<RateLimit>,
    /// The last `rate_limit_event` of each window (`rateLimitType`), in the order first seen:
    /// the five-hour, weekly and per-model weekly windows are tracked apart.
    pub windows: Vec<RateLimit>,
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
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimit {
    pub status: RateLimitStatus,
    /// `resetsAt`, Unix seconds.
    pub resets_at_s: Option<i64>,
    /// `rateLimitType`: `five_hour`, `seven_day`, ….
    pub limit_type: Option<String>,
    /// `utilization`, 0 to 1.
    pub utilization: Option<f64>,
    /// `isUsingOverage`: the request is served from overage (paid beyond the plan).
    pub using_overage: bool,
    /// `overageStatus`: whether overage may serve requests (`allowed`, `rejected`, …).
    pub overage_status: Option<RateLimitStatus>,
}

impl RateLimit {
    fn read(info: Option<&Map<String, Value>>) -> RateLimit {
        let text = |key| info.and_then(|info| str_field(info, key));
        RateLimit {
            status: RateLimitStatus::parse(text("status").unwrap_or_default()),
            resets_at_s: info.and_then(|info| i64_field(info, "resetsAt")),
            limit_type: text("rateLimitType").map(str::to_owned),
            utilization: info
                .and_then(|info| info.get("utilization"))
                .and_then(Value::as_f64)
                .filter(|u| u.is_finite()),
            using_overage: info.and_then(|info| info.get("isUsingOverage"))
                == Some(&Value::Bool(true)),
            overage_status: text("overageStatus").map(RateLimitStatus::parse),
        }
    }

    /// Whether a request refused by the plan's window is still served: overage is in use, or
    /// overage says it allows requests.
    pub fn overage_serves(&self) -> bool {
        self.using_overage
            || matches!(
                self.overage_status,
                Some(RateLimitStatus::Allowed | RateLimitStatus::AllowedWarning)
            )
    }

    /// As recorded on a step.
    pub fn seen(&self) -> RateLimitSeen {
        RateLimitSeen {
            status: self.status.as_str().to_owned(),
            window: self.limit_type.clone(),
            resets_at_ms: self.resets_at_s.and_then(|s| s.checked_mul(1000)),
            utilization: self.utilization,
            overage_in_use: Some(self.using_overage),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RateLimitStatus {
    Allowed,
    AllowedWarning,
    Rejected,
    Other(String),
}

impl RateLimitStatus {
    pub fn as_str(&self) -> &str {
        match self {
            RateLimitStatus::Allowed => "allowed",
            RateLimitStatus::AllowedWarning => "allowed_warning",
            RateLimitStatus::Rejected => "rejected",
            RateLimitStatus::Other(other) => other,
        }
    }

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
    pub duration_api_ms: Option<u64>,
    pub total_cost_usd: Option<f64>,
    /// How many tool uses the permission settings refused (`permission_denials`).
    pub permission_denials: Option<u64>,
    /// `errors`: what went wrong, on error results of newer versions (which may carry no
    /// `result` text at all).
    pub errors: Vec<String>,
    /// The models in `modelUsage`.
    pub models: Vec<String>,
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
                    if let Some(model) = t.model.clone() {
                        t.saw_model(model);
                    }
                }
            }
            "assistant" => t.assistant(&event),
            "rate_limit_event" => {
                let limit = RateLimit::read(object_field(&event, "rate_limit_info"));
                if limit.status == RateLimitStatus::Rejected {
                    t.rejected_rate_limit = Some(limit.clone());
                }
                match t
                    .windows
                    .iter_mut()
                    .find(|seen| seen.limit_type == limit.limit_type)
                {
                    Some(seen) => *seen = limit.clone(),
                    None => t.windows.push(limit.clone()),
                }
                t.rate_limit = Some(limit);
            }
            "result" => {
                let result = ClaudeResult::read(&event);
                if result.session_id.is_some() {
                    t.session_id.clone_from(&result.session_id);
                }
                for model in &result.models {
                    t.saw_model(model.clone());
                }
                t.result = Some(result);
            }
            "user" => {
                if let Some(message) = object_field(&event, "message") {
                    t.tool_results.extend(tool_results_of(message));
                }
            }
            "stream_event" => {}
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
    /// The answer, for completion detection: the `result` text; when it is empty (real CLIs
    /// sometimes end so after the reply was written) the last assistant message's text; with no
    /// `result`, the assistant messages' text, each message on its own line.
    pub fn answer(&self) -> String {
        match self
            .result
            .as_ref()
            .and_then(|result| result.result.as_ref())
        {
            Some(text) if !text.trim().is_empty() => text.clone(),
            Some(_) => self.assistant_texts.last().cloned().unwrap_or_default(),
            None => self.assistant_texts.join("\n"),
        }
    }

    /// Cost, tokens and what else the call reported of itself, whatever its end: a failed or
    /// refused call that was paid for says so too.
    pub fn figures(&self) -> CallFigures {
        let result = self.result.as_ref();
        let tokens = result
            .and_then(|r| r.usage)
            .or_else(|| (!self.usage_by_message.is_empty()).then(|| self.usage_so_far()))
            .map(ClaudeUsage::tokens);
        CallFigures {
            cost_usd: result
                .and_then(|r| r.total_cost_usd)
                .filter(|c| c.is_finite() && *c >= 0.0),
            cost_estimated: false,
            tokens,
            detail: AgentDetail {
                session_id: self.session_id.clone(),
                models: self.models.clone(),
                calls: None,
                num_turns: result.and_then(|r| r.num_turns),
                duration_api_ms: result.and_then(|r| r.duration_api_ms),
                permission_denials: result.and_then(|r| r.permission_denials),
                rate_limit: self.rate_limit.as_ref().map(RateLimit::seen),
                windows: self.windows.iter().map(RateLimit::seen).collect(),
            },
        }
    }

    /// The assistant messages' usage so far, each message counted once.
    pub fn usage_so_far(&self) -> ClaudeUsage {
        self.usage_by_message
            .values()
            .fold(ClaudeUsage::default(), |sum, usage| sum.plus(*usage))
    }

    fn saw_model(&mut self, model: String) {
        let model = model_name(&model);
        if model != "<synthetic>" && !model.is_empty() && !self.models.iter().any(|m| m == model) {
            self.models.push(model.to_owned());
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
            return;
        }
        if let Some(message) = message {
            if let Some(model) = str_field(message, "model") {
                self.saw_model(model.to_owned());
            }
            if let (Some(id), Some(usage)) =
                (str_field(message, "id"), object_field(message, "usage"))
            {
                self.usage_by_message
                    .insert(id.to_owned(), ClaudeUsage::read(usage));
            }
            self.tool_calls.extend(tool_calls_of(message));
        }
        if !text.is_empty() {
            self.assistant_texts.push(text);
        }
    }
}

/// A model's name without the context-size tag Claude Code adds to it in some places
/// (`claude-opus-4-7[1m]` in `modelUsage` and `init`, `claude-opus-4-7` in the messages): one
/// model, named once.
pub fn model_name(model: &str) -> &str {
    let model = model.trim();
    match model.rfind('[') {
        Some(at) if model.ends_with(']') => model[..at].trim_end(),
        _ => model,
    }
}

/// Whether a `modelUsage` entry shows any use: Claude Code lists models it set up but never
/// called with all-zero counts.
fn used(usage: &Value) -> bool {
    let Some(usage) = usage.as_object() else {
        return false;
    };
    [
        "inputTokens",
        "outputTokens",
        "cacheReadInputTokens",
        "cacheCreationInputTokens",
        "costUSD",
    ]
    .iter()
    .any(|key| {
        usage
            .get(*key)
            .and_then(Value::as_f64)
            .is_some_and(|n| n > 0.0)
    })
}

/// `Bash(cargo test)`, `Edit(src/lib.rs)`, `Grep(fn parse_plan)`: each `tool_use` block of a
/// message, named with the one argument that says what it does.
fn tool_calls_of(message: &Map<String, Value>) -> Vec<String> {
    let Some(Value::Array(blocks)) = message.get("content") else {
        return Vec::new();
    };
    blocks
        .iter()
        .filter_map(Value::as_object)
        .filter(|block| str_field(block, "type") == Some("tool_use"))
        .map(|block| {
            let name = str_field(block, "name").unwrap_or("tool");
            let input = object_field(block, "input");
            let argument = [
                "command",
                "file_path",
                "path",
                "pattern",
                "url",
                "query",
                "description",
                "prompt",
            ]
            .iter()
            .find_map(|key| input.and_then(|input| str_field(input, key)));
            match argument {
                Some(argument) => format!("{name}({})", one_line(argument, 80)),
                None => name.to_owned(),
            }
        })
        .collect()
}

/// Each `tool_result` block of a (user) message, summed up on one line.
fn tool_results_of(message: &Map<String, Value>) -> Vec<String> {
    let Some(Value::Array(blocks)) = message.get("content") else {
        return Vec::new();
    };
    blocks
        .iter()
        .filter_map(Value::as_object)
        .filter(|block| str_field(block, "type") == Some("tool_result"))
        .map(|block| {
            let text = match block.get("content") {
                Some(Value::String(text)) => text.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(Value::as_object)
                    .filter_map(|part| str_field(part, "text"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => String::new(),
            };
            result_summary(&text, block.get("is_error") == Some(&Value::Bool(true)))
        })
        .collect()
}

/// A tool's answer on one line: its first non-blank line, how many more there are, and
/// whether it was an error.
pub(super) fn result_summary(text: &str, error: bool) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let first = lines
        .first()
        .map_or_else(|| "(no output)".to_owned(), |line| one_line(line, 100));
    let more = match lines.len() {
        0 | 1 => String::new(),
        n => format!(" … +{} lines", n - 1),
    };
    if error {
        format!("Error: {first}{more}")
    } else {
        format!("{first}{more}")
    }
}

/// `text` on one line, cut to `chars` characters.
pub(super) fn one_line(text: &str, chars: usize) -> String {
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match words.char_indices().nth(chars) {
        Some((cut, _)) => format!("{}…", &words[..cut]),
        None => words,
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

impl ClaudeUsage {
    fn read(usage: &Map<String, Value>) -> ClaudeUsage {
        let count = |key| u64_field(usage, key).unwrap_or(0);
        ClaudeUsage {
            input_tokens: count("input_tokens"),
            output_tokens: count("output_tokens"),
            cache_creation_input_tokens: count("cache_creation_input_tokens"),
            cache_read_input_tokens: count("cache_read_input_tokens"),
        }
    }

    fn plus(self, other: ClaudeUsage) -> ClaudeUsage {
        ClaudeUsage {
            input_tokens: self.input_tokens.saturating_add(other.input_tokens),
            output_tokens: self.output_tokens.saturating_add(other.output_tokens),
            cache_creation_input_tokens: self
                .cache_creation_input_tokens
                .saturating_add(other.cache_creation_input_tokens),
            cache_read_input_tokens: self
                .cache_read_input_tokens
                .saturating_add(other.cache_read_input_tokens),
        }
    }

    /// As recorded: every input token (fresh, written to the cache, read from it), and of
    /// them the cache reads and the cache writes.
    pub fn tokens(self) -> Tokens {
        Tokens {
            input: self
                .input_tokens
                .saturating_add(self.cache_creation_input_tokens)
                .saturating_add(self.cache_read_input_tokens),
            output: self.output_tokens,
            cached: self.cache_read_input_tokens,
            cache_write: self.cache_creation_input_tokens,
            reasoning: 0,
        }
    }
}

impl ClaudeResult {
    fn read(event: &Map<String, Value>) -> ClaudeResult {
        let text = |key| str_field(event, key).map(str::to_owned);
        let strings = |value: Option<&Value>| -> Vec<String> {
            match value {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|item| match item {
                        Value::String(text) => Some(text.clone()),
                        Value::Object(object) => str_field(object, "message").map(str::to_owned),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            }
        };
        ClaudeResult {
            subtype: str_field(event, "subtype").map(ResultSubtype::parse),
            is_error: event.get("is_error") == Some(&Value::Bool(true)),
            result: text("result"),
            session_id: text("session_id"),
            num_turns: u64_field(event, "num_turns"),
            duration_ms: u64_field(event, "duration_ms"),
            duration_api_ms: u64_field(event, "duration_api_ms"),
            // Older versions wrote `cost_usd` (and `total_cost`) where 2.x writes
            // `total_cost_usd`.
            total_cost_usd: ["total_cost_usd", "cost_usd", "total_cost"]
                .iter()
                .find_map(|key| event.get(*key).and_then(Value::as_f64)),
            permission_denials: match event.get("permission_denials") {
                Some(Value::Array(denials)) => Some(denials.len() as u64),
                _ => None,
            },
            errors: strings(event.get("errors")),
            models: object_field(event, "modelUsage")
                .map(|usage| {
                    usage
                        .iter()
                        .filter(|(_, usage)| used(usage))
                        .map(|(model, _)| model.clone())
                        .collect()
                })
                .unwrap_or_default(),
            usage: object_field(event, "usage").map(ClaudeUsage::read),
            terminal_reason: text("terminal_reason"),
            api_error_status: i64_field(event, "api_error_status")
                .and_then(|status| u16::try_from(status).ok()),
        }
    }
}

/// How a Claude Code call ended:
///
/// 1. a `result` that is not an error (`is_error` false, subtype `success`) is a success,
///    whatever its text and the exit code: the request was served. A `rate_limit_event` that
///    said `rejected` on the way (overage served it) and an answer that begins "API Error"
///    change nothing, and once the final answer is out, the process ending badly (an MCP
///    server failing at exit, or the runtime stopping it after the `result`) does not undo it.
///    So the caller passes the exit code it saw, `None` for a signal;
/// 2. a call not served (an errored `result`, or none) after a `rate_limit_event` with status
///    `rejected`: the usage limit, until its `resetsAt`;
/// 3. an errored `result`: the turn or budget cap by `subtype`; else by its text, its
///    `errors`, a synthetic API error message and the stderr tail (a usage limit in any of
///    them first), then by `api_error_status`; else a failed attempt quoting them;
/// 4. no `result`: a synthetic API error or the stderr tail is read as in 3; failing that, an
///    exit code 0 with answer text is a success, and anything else a failed attempt (crashed
///    or killed), its reason ending with the stderr tail.
///
/// Only texts known to be errors are read for what they say, so an answer or a tool's output
/// that talks about limits never stops a run.
pub fn classify(
    transcript: &ClaudeTranscript,
    exit_code: Option<i32>,
    stderr_tail: &str,
    when: &When,
) -> CallEnd {
    let agent = Agent::Claude;
    let api_error = transcript
        .api_error
        .as_ref()
        .map_or("", |error| error.text.as_str());
    let result = transcript.result.as_ref();
    if result.is_some_and(ClaudeResult::served) {
        return CallEnd::Success;
    }
    let errors = result.map(|r| r.errors.join("; ")).unwrap_or_default();
    let result_text = result.and_then(|r| r.result.as_deref()).unwrap_or("");

    // A window that refused the request while overage served it is no limit: the call went
    // on, paid beyond the plan, and whatever ended it (a 529, a broken connection, the turn
    // cap) is read below as if the window had said nothing. Reading it as the limit would
    // wait hours for the window's reset instead of seconds for a retry, and hold every run of
    // the account meanwhile. Only an error that itself says "limit" (the overage ran out too)
    // makes it one.
    let says_limit = || {
        [api_error, result_text, errors.as_str(), stderr_tail]
            .iter()
            .any(|text| {
                matches!(
                    error_text::read(text, when),
                    Some(Signal::UsageLimit { .. })
                )
            })
    };
    if let Some(limit) = transcript
        .rejected_rate_limit
        .as_ref()
        .filter(|limit| !limit.overage_serves() || says_limit())
    {
        let said = [api_error, result_text, errors.as_str()]
            .into_iter()
            .find(|text| !text.trim().is_empty());
        let reset_ms = limit
            .resets_at_s
            .and_then(|seconds| seconds.checked_mul(1000))
            .or_else(
                || match said.and_then(|text| error_text::read(text, when)) {
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
        return error_text::usage_limit(
            agent,
            reset_ms,
            limit.limit_type.clone(),
            &said,
            when.now_ms,
        );
    }

    if let Some(result) = result {
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
        let texts = [result_text, errors.as_str(), api_error, stderr_tail];
        if let Some(end) = error_text::read_all(agent, &texts, result.api_error_status, when) {
            return end;
        }
        let head = match (&result.subtype, &result.terminal_reason) {
            (Some(ResultSubtype::ErrorDuringExecution), _) => {
                "Claude Code failed during execution".to_owned()
            }
            (_, Some(reason)) => format!("Claude Code reported an error ({reason})"),
            (_, None) => "Claude Code reported an error".to_owned(),
        };
        let said = texts
            .into_iter()
            .find(|text| !text.trim().is_empty())
            .unwrap_or("");
        return failed(error_text::quoting(head, said));
    }

    if let Some(end) = error_text::read_all(agent, &[api_error], None, when) {
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
    if let Some(end) = error_text::read_all(agent, &[stderr_tail], None, when) {
        return end;
    }
    error_text::died_without_final_event(agent, "result", exit_code, stderr_tail)
}

impl ClaudeResult {
    /// The request was served and this is its answer: not an error, by flag or by subtype.
    pub fn served(&self) -> bool {
        let errored_subtype = match &self.subtype {
            Some(ResultSubtype::Success) | None => false,
            Some(ResultSubtype::Other(other)) => other.starts_with("error"),
            Some(_) => true,
        };
        !self.is_error && !errored_subtype
    }
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
        assert_eq!(classify(&t, Some(0), "", &When::utc(NOW)), CallEnd::Success);
    }

    #[test]
    fn tool_results_are_summed_up_on_one_line_each() {
        let t = transcript(&[
            r#"{"type":"assistant","message":{"id":"m1","content":[{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"python3 -m unittest -q"}}]}}"#,
            r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1","content":"\n..F\nFAIL: test_total\n\nRan 3 tests"}]}}"#,
            r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t2","is_error":true,"content":[{"type":"text","text":"File does not exist."}]}]}}"#,
            r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t3","content":""}]}}"#,
        ]);
        assert_eq!(t.tool_calls, ["Bash(python3 -m unittest -q)"]);
        assert_eq!(
            t.tool_results,
            [
                "..F … +2 lines",
                "Error: File does not exist.",
                "(no output)"
            ]
        );
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
                classify(&t, exit, "Killed", &When::utc(NOW)),
                CallEnd::Success,
                "{exit:?}"
            );
        }
    }

    #[test]
    fn a_rejected_rate_limit_is_a_usage_limit_only_when_the_call_was_not_served() {
        let events = [
            INIT,
            r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed_warning","resetsAt":1790003600,"rateLimitType":"seven_day"}}"#,
            r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1790010000,"rateLimitType":"five_hour","isUsingOverage":true,"overageStatus":"allowed"}}"#,
            r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed","resetsAt":1790020000,"rateLimitType":"seven_day"}}"#,
        ];
        // Served from overage: the answer stands.
        let served = transcript(
            &[
                &events[..],
                &[r#"{"type":"result","subtype":"success","is_error":false,"result":"ok"}"#],
            ]
            .concat(),
        );
        assert_eq!(
            served.rate_limit.as_ref().map(|limit| &limit.status),
            Some(&RateLimitStatus::Allowed)
        );
        let rejected = served.rejected_rate_limit.as_ref().unwrap();
        assert!(rejected.overage_serves());
        assert_eq!(
            classify(&served, Some(0), "", &When::utc(NOW)),
            CallEnd::Success
        );
        // Not served, and the error says the limit (the overage ran out too): the limit, until
        // the window's reset.
        let limit = r#"{"type":"result","subtype":"success","is_error":true,"result":"You've hit your limit"}"#;
        let lines: Vec<&str> = events.iter().copied().chain([limit]).collect();
        let end = classify(&transcript(&lines), Some(1), "", &When::utc(NOW));
        assert!(
            matches!(
                end,
                CallEnd::UsageLimit {
                    until_ms: 1_790_010_060_000,
                    ..
                }
            ),
            "{end:?}"
        );
        // Not served for another reason (the process died): a failed attempt to retry, not
        // hours of waiting for the window.
        let end = classify(&transcript(&events), Some(1), "", &When::utc(NOW));
        assert_eq!(end.as_str(), "failed", "{end:?}");
        // A window that refused without overage is the limit whatever ended the call.
        let plain = events[2].replace(r#","isUsingOverage":true,"overageStatus":"allowed""#, "");
        let lines = [INIT, plain.as_str()];
        let end = classify(&transcript(&lines), Some(1), "", &When::utc(NOW));
        assert!(
            matches!(end, CallEnd::UsageLimit { until_ms: 1_790_010_060_000, window: Some(ref w), .. } if w == "five_hour"),
            "{end:?}"
        );
    }

    #[test]
    fn an_answer_that_reads_like_an_error_is_still_an_answer() {
        for text in [
            "API Error: the handler now returns 502 on upstream failure",
            "Claude AI usage limit reached|1790006400",
        ] {
            let line = format!(
                r#"{{"type":"result","subtype":"success","is_error":false,"result":{}}}"#,
                serde_json::to_string(text).unwrap()
            );
            let t = transcript(&[INIT, &line]);
            assert_eq!(
                classify(&t, Some(0), "", &When::utc(NOW)),
                CallEnd::Success,
                "{text}"
            );
        }
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
            classify(&t, Some(1), "", &When::utc(NOW)),
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
                r#""subtype":"success","is_error":true,"result":"Claude AI usage limit reached|1790006400""#,
                "usage_limit",
                "2026-09-21T16:00:00.000Z",
            ),
        ];
        for (fields, kind, part) in cases {
            let end = classify(&result(fields), Some(1), "", &When::utc(NOW));
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
        assert_eq!(
            classify(&started, Some(0), "", &When::utc(NOW)),
            CallEnd::Success
        );
        let end = classify(&started, Some(137), "out of memory\n", &When::utc(NOW));
        assert_eq!(end.as_str(), "failed");
        assert!(end.reason().contains("exit code 137"), "{end:?}");
        assert!(end.reason().ends_with("out of memory"), "{end:?}");
        let end = classify(&started, None, "", &When::utc(NOW));
        assert!(end.reason().contains("signal"), "{end:?}");
        let silent = transcript(&[INIT]);
        assert_eq!(
            classify(&silent, Some(0), "", &When::utc(NOW)).as_str(),
            "failed"
        );
        assert_eq!(
            classify(
                &silent,
                Some(1),
                "Invalid API key · Please run /login",
                &When::utc(NOW)
            )
            .as_str(),
            "auth"
        );
    }

    #[test]
    fn each_model_is_named_once_and_unused_ones_not_at_all() {
        // As the stub prints it after a real 2.1.x run: the 1M-context tag in `init` and
        // `modelUsage`, not in the messages; a model set up but never called with zero usage.
        let t = transcript(&[
            r#"{"type":"system","subtype":"init","session_id":"s","model":"claude-opus-4-7[1m]"}"#,
            r#"{"type":"assistant","message":{"id":"m1","model":"claude-opus-4-7","content":[{"type":"text","text":"ok"}]}}"#,
            r#"{"type":"result","subtype":"success","is_error":false,"result":"ok","modelUsage":{"claude-haiku-4-5-20251001":{},"claude-opus-4-7[1m]":{"inputTokens":3,"outputTokens":9,"costUSD":0.01}}}"#,
        ]);
        assert_eq!(t.figures().detail.models, ["claude-opus-4-7"]);
        assert_eq!(model_name("claude-sonnet-4-5 [1m] "), "claude-sonnet-4-5");
    }

    #[test]
    fn every_window_reported_is_kept_by_its_type() {
        let t = transcript(&[
            r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed","resetsAt":1790003600,"rateLimitType":"five_hour","utilization":0.2}}"#,
            r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed_warning","resetsAt":1790500000,"rateLimitType":"seven_day_opus","utilization":0.8}}"#,
            r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed","resetsAt":1790003600,"rateLimitType":"five_hour","utilization":0.3}}"#,
        ]);
        let windows = t.figures().detail.windows;
        let seen: Vec<(Option<&str>, Option<f64>)> = windows
            .iter()
            .map(|w| (w.window.as_deref(), w.utilization))
            .collect();
        assert_eq!(
            seen,
            [
                (Some("five_hour"), Some(0.3)),
                (Some("seven_day_opus"), Some(0.8))
            ]
        );
    }

    #[test]
    fn a_model_s_weekly_limit_names_its_window() {
        let t = transcript(&[
            r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1790013600,"rateLimitType":"seven_day_opus"}}"#,
            r#"{"type":"result","subtype":"success","is_error":true,"result":"You've hit your limit"}"#,
        ]);
        assert!(matches!(
            classify(&t, Some(1), "", &When::utc(NOW)),
            CallEnd::UsageLimit { window: Some(window), .. } if window == "seven_day_opus"
        ));
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
