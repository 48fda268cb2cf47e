//! `agent=codex`: `codex exec --json`, the prompt on stdin, JSON events on stdout. Codex
//! reports tokens but no cost.

use std::io;
use std::path::{Path, PathBuf};

use loop_core::agent_stream::codex::classify;
use loop_core::agent_stream::{CodexStream, CodexTranscript};
use loop_core::event::{RateLimitSeen, Tokens};

use crate::agent::json_stream::{self, Transcribing};
use crate::agent::progress::{result_line, tool_line};
use crate::agent::{Agent, AgentReply, AgentRequest, BoxFuture};
use crate::process::LineEffect;
use crate::step_output::StepOutput;

/// `codex exec`, its calls' tokens priced by a table (`loop_core::prices`): the shipped one,
/// or the daemon's (`loopd --prices`, through [`crate::RuntimeBuilder::prices`]).
#[derive(Clone, Debug)]
pub struct CodexAgent {
    prices: std::sync::Arc<loop_core::prices::PriceTable>,
}

impl Default for CodexAgent {
    fn default() -> CodexAgent {
        CodexAgent::priced(loop_core::prices::PriceTable::shipped())
    }
}

impl CodexAgent {
    /// Codex with its costs estimated by `prices`.
    pub fn priced(prices: loop_core::prices::PriceTable) -> CodexAgent {
        CodexAgent {
            prices: std::sync::Arc::new(prices),
        }
    }
}

impl Transcribing for CodexStream {
    type Transcript = CodexTranscript;

    fn feed(&mut self, line: Option<&str>, output: &mut StepOutput) -> LineEffect {
        let before = self.transcript().answer.clone();
        let tools_before = self.transcript().tool_calls.len();
        let results_before = self.transcript().tool_results.len();
        match line {
            Some(line) => CodexStream::feed(self, line),
            None => self.feed_oversized(),
        }
        for call in &self.transcript().tool_calls[tools_before..] {
            output.line(&tool_line(call));
        }
        for result in &self.transcript().tool_results[results_before..] {
            output.line(&result_line(result));
        }
        let answer = &self.transcript().answer;
        if *answer != before
            && let Some(text) = answer
        {
            for text_line in text.lines() {
                output.line(text_line);
            }
        }
        LineEffect::Continue
    }

    fn tokens(&self) -> Option<Tokens> {
        self.transcript().figures().tokens
    }

    fn finish(self) -> CodexTranscript {
        CodexStream::finish(self)
    }
}

impl Agent for CodexAgent {
    fn call<'a>(&'a self, mut request: AgentRequest<'a>) -> BoxFuture<'a, io::Result<AgentReply>> {
        Box::pin(async move {
            let mut args: Vec<String> = vec!["exec".into(), "--json".into()];
            if !request.model.is_empty() {
                args.extend(["-m".into(), request.model.to_owned()]);
            }
            args.extend([
                "--sandbox".into(),
                "workspace-write".into(),
                "--skip-git-repo-check".into(),
                "-".into(),
            ]);
            let spec = request.process(&request.config.codex_bin, args, &[]);
            let (outcome, transcript, end) =
                json_stream::call(&spec, &mut request, CodexStream::new(), classify).await?;
            let mut figures = transcript.figures();
            // Codex reports tokens and no cost: the cost is estimated from the shipped price
            // table, so `max_cost_usd` and the account budgets hold Codex runs too.
            if figures.cost_usd.is_none()
                && let Some(tokens) = &figures.tokens
            {
                figures.cost_usd = self.prices.estimate("codex", request.model, tokens);
                figures.cost_estimated = figures.cost_usd.is_some();
            }
            // The window the account is in, which `codex exec --json` does not print: from the
            // session's rollout file, for the reserve (specs/runtime.md, "Accounts").
            if let Some(thread) = &transcript.thread_id {
                figures.detail.rate_limit = rollout_rate_limit(thread, request.now_ms).await;
            }
            Ok(AgentReply {
                answer: transcript.answer.clone().unwrap_or_default(),
                end,
                exit_code: outcome.exit_code,
                process_end: outcome.ended,
                figures,
            })
        })
    }
}

/// Where Codex keeps its sessions: `$CODEX_HOME`, else `~/.codex` (the agent inherits this
/// process's environment).
fn codex_home() -> Option<PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    set("CODEX_HOME")
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|home| PathBuf::from(home).join(".codex")))
}

/// The rate-limit window the session `thread` last reported, read from its rollout file.
async fn rollout_rate_limit(thread: &str, now_ms: i64) -> Option<RateLimitSeen> {
    let home = codex_home()?;
    let thread = thread.to_owned();
    tokio::task::spawn_blocking(move || {
        let path = find_rollout(&home.join("sessions"), &thread)?;
        let text = read_tail(&path, ROLLOUT_TAIL).ok()?;
        loop_core::agent_stream::codex::rollout_rate_limit(&text, now_ms)
    })
    .await
    .ok()
    .flatten()
}

/// The end of a rollout that is read: its last `token_count` is near it.
const ROLLOUT_TAIL: u64 = 256 * 1024;

/// `sessions/YYYY/MM/DD/rollout-<time>-<thread>.jsonl`, looking at the three newest days only:
/// the call that wrote it just ended.
fn find_rollout(sessions: &Path, thread: &str) -> Option<PathBuf> {
    let newest_first = |dir: &Path| -> Vec<PathBuf> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        entries.sort();
        entries.reverse();
        entries
    };
    let suffix = format!("-{thread}.jsonl");
    let days = newest_first(sessions)
        .into_iter()
        .flat_map(|year| newest_first(&year))
        .flat_map(|month| newest_first(&month))
        .take(3);
    for day in days {
        let found = newest_first(&day).into_iter().find(|file| {
            file.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("rollout-") && name.ends_with(&suffix))
        });
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The last `limit` bytes of a file, from a line's start.
fn read_tail(path: &Path, limit: u64) -> io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let length = file.metadata()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(limit)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(match (length > limit, text.find('\n')) {
        (true, Some(first)) => text[first + 1..].to_owned(),
        _ => text.into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_s_rollout_is_found_among_the_newest_days_and_read_from_a_line() {
        let home = tempfile::tempdir().expect("temp dir");
        let sessions = home.path().join("sessions");
        let thread = "019f90b8-96af-7582-a50f-e158e39fd20a";
        let day = sessions.join("2026/12/02");
        std::fs::create_dir_all(&day).expect("day");
        std::fs::create_dir_all(sessions.join("2026/11/30")).expect("older day");
        let file = day.join(format!("rollout-2026-12-02T10-00-00-{thread}.jsonl"));
        std::fs::write(&file, "first line\nsecond line\n").expect("rollout");
        std::fs::write(day.join("rollout-2026-12-02T09-00-00-other.jsonl"), "").expect("other");
        assert_eq!(find_rollout(&sessions, thread), Some(file.clone()));
        assert_eq!(find_rollout(&sessions, "missing"), None);
        assert_eq!(read_tail(&file, 15).expect("tail"), "second line\n");
        assert_eq!(
            read_tail(&file, 1000).expect("all"),
            "first line\nsecond line\n"
        );
    }
}
