//! Claude Code's `--output-format stream-json --verbose` output, and how a call to it ended.
//!
//! Every line is a JSON object with a `type`: `system` (the `init` one names the session and
//! model), `assistant` (the answer's text blocks, or a synthetic message reporting an API
//! error), `user` (tool results: read for nothing, since a tool's output quoting an error must
//! never pass for one), `stream_event`, `rate_limit_event`, and a last `result`.

use serde_json::{Map, Value};

use std::collections::BTreeMap;

use super::{
    CallFigures, LineStats, Stream, Transcript, i64_field, object_field, str_field, u64_field,
};
use crate::event::{AgentDetail, RateLimitSeen, Tokens};

mod classify;
mod content;
#[cfg(test)]
mod tests;

pub use classify::classify;
use content::{text_of, tool_calls_of, tool_results_of};

/// Reads Claude Code's stream one line at a time.
pub type ClaudeStream = Stream<ClaudeTranscript>;

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

impl Transcript for ClaudeTranscript {
    fn lines_mut(&mut self) -> &mut LineStats {
        &mut self.lines
    }

    fn event(&mut self, kind: &str, event: Map<String, Value>) {
        let t = self;
        match kind {
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
