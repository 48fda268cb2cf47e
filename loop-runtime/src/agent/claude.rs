//! `agent=claude`: Claude Code in print mode with its JSON stream.
//!
//! `claude -p --output-format stream-json --verbose --model M --dangerously-skip-permissions
//! --session-id ID` (or `--resume ID` to go on with an interrupted session), the prompt on
//! stdin, `CLAUDECODE` removed from the environment so it runs when the loop itself was started
//! from a Claude Code session.

use std::io;
use std::time::Duration;

use loop_core::agent_stream::ClaudeStream;
use loop_core::agent_stream::claude::classify;
use loop_core::config::PermissionMode;

use crate::agent::progress::{heartbeat, result_line, tool_line};
use crate::agent::{Agent, AgentReply, AgentRequest, BoxFuture, Session, stopped, when};
use crate::process::{self, Ended, LineEffect, LineJoiner, LineSink};
use crate::step_output::StepOutput;

#[derive(Clone, Copy, Debug, Default)]
pub struct ClaudeAgent;

struct Stream<'a> {
    output: &'a mut StepOutput,
    stream: ClaudeStream,
    joiner: LineJoiner,
}

impl LineSink for Stream<'_> {
    fn stdout_part(&mut self, part: &str) {
        self.joiner.part(part);
    }

    fn stdout_line(&mut self, line: &str) -> LineEffect {
        let before = self.stream.transcript();
        let (texts_before, tools_before, results_before) = (
            before.assistant_texts.len(),
            before.tool_calls.len(),
            before.tool_results.len(),
        );
        let had_result = before.result.is_some();
        match self.joiner.line(line) {
            Some(line) => self.stream.feed(&line),
            None => self.stream.feed_oversized(),
        }
        let transcript = self.stream.transcript();
        for text in &transcript.assistant_texts[texts_before..] {
            for text_line in text.lines() {
                self.output.line(text_line);
            }
        }
        for call in &transcript.tool_calls[tools_before..] {
            self.output.line(&tool_line(call));
        }
        for result in &transcript.tool_results[results_before..] {
            self.output.line(&result_line(result));
        }
        if !had_result && transcript.result.is_some() {
            LineEffect::Done
        } else {
            LineEffect::Continue
        }
    }

    fn stderr_line(&mut self, line: &str) {
        self.output.line(&format!("[stderr] {line}"));
    }

    fn quiet(&mut self, running: Duration) {
        let tokens = Some(self.stream.transcript().usage_so_far().tokens());
        self.output.line(&heartbeat(running, tokens, None));
    }

    fn batch_start(&mut self) {
        self.output.hold();
    }

    fn batch_end(&mut self) {
        self.output.release();
    }
}

impl Agent for ClaudeAgent {
    fn call<'a>(&'a self, request: AgentRequest<'a>) -> BoxFuture<'a, io::Result<AgentReply>> {
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
            let mut sink = Stream {
                output: request.output,
                stream: ClaudeStream::new(),
                joiner: LineJoiner::default(),
            };
            let outcome = process::run(
                &spec,
                request.limits,
                Some(request.raw),
                &mut sink,
                request.cancel,
            )
            .await?;
            let transcript = sink.stream.finish();
            let exit_code = match outcome.ended {
                Ended::StoppedAfterDone => None,
                _ => outcome.exit_code,
            };
            let end = match stopped(outcome.ended, &request.limits) {
                Some(end) => end,
                None => classify(
                    &transcript,
                    exit_code,
                    &outcome.stderr_tail,
                    &when(&request),
                ),
            };
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
