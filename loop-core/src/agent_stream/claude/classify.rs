//! How a call to Claude Code ended, read from its transcript, its exit and its stderr.

use super::{ClaudeResult, ClaudeTranscript, ResultSubtype};
use crate::agent_stream::error_text::{self, Agent, Signal};
use crate::agent_stream::{CallEnd, When};

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
