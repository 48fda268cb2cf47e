//! `agent=claude`: Claude Code in print mode with its JSON stream.
//!
//! `claude -p --output-format stream-json --verbose --model M --dangerously-skip-permissions
//! --session-id ID` (or `--resume ID` to go on with an interrupted session), the prompt on
//! stdin, `CLAUDECODE` removed from the environment so it runs when the loop itself was started
//! from a Claude Code session.

use std::io;

use loop_core::agent_stream::claude::classify;
use loop_core::agent_stream::{ClaudeStream, ClaudeTranscript};
use loop_core::config::PermissionMode;
use loop_core::event::Tokens;

use crate::agent::json_stream::{self, Transcribing};
use crate::agent::progress::{result_line, tool_line};
use crate::agent::{Agent, AgentReply, AgentRequest, BoxFuture, Session};
use crate::process::LineEffect;
use crate::step_output::StepOutput;

#[derive(Clone, Copy, Debug, Default)]
pub struct ClaudeAgent;

impl Transcribing for ClaudeStream {
    type Transcript = ClaudeTranscript;

    fn feed(&mut self, line: Option<&str>, output: &mut StepOutput) -> LineEffect {
        let before = self.transcript();
        let (texts_before, tools_before, results_before) = (
            before.assistant_texts.len(),
            before.tool_calls.len(),
            before.tool_results.len(),
        );
        let had_result = before.result.is_some();
        match line {
            Some(line) => ClaudeStream::feed(self, line),
            None => self.feed_oversized(),
        }
        let transcript = self.transcript();
        for text in &transcript.assistant_texts[texts_before..] {
            for text_line in text.lines() {
                output.line(text_line);
            }
        }
        for call in &transcript.tool_calls[tools_before..] {
            output.line(&tool_line(call));
        }
        for result in &transcript.tool_results[results_before..] {
            output.line(&result_line(result));
        }
        if !had_result && transcript.result.is_some() {
            LineEffect::Done
        } else {
            LineEffect::Continue
        }
    }

    fn tokens(&self) -> Option<Tokens> {
        Some(self.transcript().usage_so_far().tokens())
    }

    fn finish(self) -> ClaudeTranscript {
        ClaudeStream::finish(self)
    }
}

impl Agent for ClaudeAgent {
    fn call<'a>(&'a self, mut request: AgentRequest<'a>) -> BoxFuture<'a, io::Result<AgentReply>> {
        Box::pin(async move {
            let session = request
                .session
                .clone()
                .unwrap_or_else(|| Session::New(uuid::Uuid::new_v4().to_string()));
            let (session_flag, session_id) = match &session {
                Session::New(id) => ("--session-id", id.as_str()),
                Session::Resume(id) => ("--resume", id.as_str()),
            };
            // Unattended: whatever the mode would ask about is refused (and counted in the
            // step's permission denials).
            let permissions: &[&str] = match request.config.permission_mode {
                PermissionMode::BypassPermissions => &["--dangerously-skip-permissions"],
                mode => &["--permission-mode", mode.as_str()],
            };
            let mut args = vec![
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--model",
                request.model,
            ];
            args.extend_from_slice(permissions);
            args.extend([session_flag, session_id]);
            let spec = request.process(
                &request.config.claude_bin,
                args,
                // So that it runs when the loop itself was started from a Claude Code session.
                &["CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT"],
            );
            let (outcome, transcript, end) =
                json_stream::call(&spec, &mut request, ClaudeStream::new(), classify).await?;
            let mut figures = transcript.figures();
            figures
                .detail
                .session_id
                .get_or_insert_with(|| session.id().to_owned());
            Ok(AgentReply {
                answer: transcript.answer(),
                end,
                exit_code: outcome.exit_code,
                process_end: outcome.ended,
                figures,
            })
        })
    }

    fn resumes(&self) -> bool {
        true
    }
}
