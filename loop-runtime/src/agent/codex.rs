//! `agent=codex`: `codex exec --json`, the prompt on stdin, JSON events on stdout. Codex
//! reports tokens but no cost.

use std::io;

use std::time::Duration;

use loop_core::agent_stream::CodexStream;
use loop_core::agent_stream::codex::classify;

use crate::agent::progress::{heartbeat, tool_line};
use crate::agent::{Agent, AgentReply, AgentRequest, BoxFuture, stopped, when};
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
        let tools_before = self.stream.transcript().tool_calls.len();
        match self.joiner.line(line) {
            Some(line) => self.stream.feed(&line),
            None => self.stream.feed_oversized(),
        }
        for call in &self.stream.transcript().tool_calls[tools_before..] {
            self.output.line(&tool_line(call));
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

    fn quiet(&mut self, running: Duration) {
        let tokens = self.stream.transcript().figures().tokens;
        self.output.line(&heartbeat(running, tokens, None));
    }

    fn batch_start(&mut self) {
        self.output.hold();
    }

    fn batch_end(&mut self) {
        self.output.release();
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
            let spec = request.process(&request.config.codex_bin, args, &[]);
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
                    &when(&request),
                ),
            };
            Ok(AgentReply {
                answer: transcript.answer.clone().unwrap_or_default(),
                end,
                exit_code: outcome.exit_code,
                process_end: outcome.ended,
                figures: transcript.figures(),
            })
        })
    }
}
