//! `agent=codex`: `codex exec --json`, the prompt on stdin, JSON events on stdout. Codex
//! reports tokens but no cost.

use std::io;

use loop_core::agent_stream::CodexStream;
use loop_core::agent_stream::codex::classify;
use loop_core::event::Tokens;

use crate::agent::{Agent, AgentReply, AgentRequest, BoxFuture, stopped};
use crate::process::{self, LineEffect, LineJoiner, LineSink};
use crate::step_output::StepOutput;

#[derive(Clone, Copy, Debug, Default)]
pub struct CodexAgent;

struct Stream<'a> {
    output: &'a mut StepOutput,
    stream: CodexStream,
    joiner: LineJoiner,
}

impl LineSink for Stream<'_> {
    fn stdout_part(&mut self, part: &str) {
        self.joiner.part(part);
    }

    fn stdout_line(&mut self, line: &str) -> LineEffect {
        let before = self.stream.transcript().answer.clone();
        match self.joiner.line(line) {
            Some(line) => self.stream.feed(&line),
            None => self.stream.feed_oversized(),
        }
        let answer = &self.stream.transcript().answer;
        if *answer != before
            && let Some(text) = answer
        {
            for text_line in text.lines() {
                self.output.line(text_line);
            }
        }
        LineEffect::Continue
    }

    fn stderr_line(&mut self, line: &str) {
        self.output.line(&format!("[stderr] {line}"));
    }
}

impl Agent for CodexAgent {
    fn call<'a>(&'a self, request: AgentRequest<'a>) -> BoxFuture<'a, io::Result<AgentReply>> {
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
            let spec = request.process("codex", args, &[]);
            let mut sink = Stream {
                output: request.output,
                stream: CodexStream::new(),
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
            let end = match stopped(outcome.ended, &request.limits) {
                Some(end) => end,
                None => classify(
                    &transcript,
                    outcome.exit_code,
                    &outcome.stderr_tail,
                    request.now_ms,
                ),
            };
            Ok(AgentReply {
                answer: transcript.answer.clone().unwrap_or_default(),
                end,
                exit_code: outcome.exit_code,
                process_end: outcome.ended,
                cost_usd: None,
                tokens: Some(Tokens {
                    input: transcript.usage.input_tokens + transcript.usage.cached_input_tokens,
                    output: transcript.usage.output_tokens,
                }),
                session_id: transcript.thread_id.clone(),
            })
        })
    }
}
