//! `agent=claude`: Claude Code in print mode with its JSON stream.
//!
//! `claude -p --output-format stream-json --verbose --model M --dangerously-skip-permissions
//! --session-id ID`, the prompt on stdin, `CLAUDECODE` removed from the environment so it runs
//! when the loop itself was started from a Claude Code session.

use std::io;

use loop_core::agent_stream::ClaudeStream;
use loop_core::agent_stream::claude::classify;
use loop_core::event::Tokens;

use crate::agent::{Agent, AgentReply, AgentRequest, BoxFuture, stopped};
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
        let texts_before = self.stream.transcript().assistant_texts.len();
        let had_result = self.stream.transcript().result.is_some();
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
        if !had_result && transcript.result.is_some() {
            LineEffect::Done
        } else {
            LineEffect::Continue
        }
    }

    fn stderr_line(&mut self, line: &str) {
        self.output.line(&format!("[stderr] {line}"));
    }
}

impl Agent for ClaudeAgent {
    fn call<'a>(&'a self, request: AgentRequest<'a>) -> BoxFuture<'a, io::Result<AgentReply>> {
        Box::pin(async move {
            let session_id = uuid::Uuid::new_v4().to_string();
            let spec = request.process(
                &request.config.claude_bin,
                [
                    "-p",
                    "--output-format",
                    "stream-json",
                    "--verbose",
                    "--model",
                    request.model,
                    "--dangerously-skip-permissions",
                    "--session-id",
                    &session_id,
                ],
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
                Some(request.raw_path),
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
                None => classify(&transcript, exit_code, &outcome.stderr_tail, request.now_ms),
            };
            let result = transcript.result.as_ref();
            Ok(AgentReply {
                answer: transcript.answer(),
                end,
                exit_code: outcome.exit_code,
                process_end: outcome.ended,
                cost_usd: result
                    .and_then(|r| r.total_cost_usd)
                    .filter(|c| c.is_finite() && *c >= 0.0),
                tokens: result.and_then(|r| r.usage).map(|usage| Tokens {
                    input: usage.input_tokens
                        + usage.cache_creation_input_tokens
                        + usage.cache_read_input_tokens,
                    output: usage.output_tokens,
                }),
                session_id: transcript.session_id.clone().or(Some(session_id)),
            })
        })
    }
}
