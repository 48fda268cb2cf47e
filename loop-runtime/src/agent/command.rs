//! `agent=command`: any program, run with `sh -c agent_cmd`; the prompt on stdin and in
//! `$LOOP_PROMPT_FILE`; stdout is the answer as plain text.

use std::io;

use loop_core::agent_stream::CallFigures;

use crate::agent::{Agent, AgentReply, AgentRequest, BoxFuture, CallEnd, stopped};
use crate::process::{self, LineEffect, LineSink};
use crate::step_output::StepOutput;

#[derive(Clone, Copy, Debug, Default)]
pub struct CommandAgent;

struct Text<'a> {
    output: &'a mut StepOutput,
    answer: String,
}

impl LineSink for Text<'_> {
    fn stdout_line(&mut self, line: &str) -> LineEffect {
        self.output.line(line);
        // Bound the answer: the end of it is what completion detection reads.
        if self.answer.len() > 1024 * 1024 {
            let cut = self.answer.len() - 512 * 1024;
            let cut = (cut..self.answer.len())
                .find(|i| self.answer.is_char_boundary(*i))
                .unwrap_or(0);
            self.answer.drain(..cut);
        }
        self.answer.push_str(line);
        self.answer.push('\n');
        LineEffect::Continue
    }

    fn stderr_line(&mut self, line: &str) {
        self.output.line(line);
    }

    fn batch_start(&mut self) {
        self.output.hold();
    }

    fn batch_end(&mut self) {
        self.output.release();
    }
}

impl Agent for CommandAgent {
    fn call<'a>(&'a self, request: AgentRequest<'a>) -> BoxFuture<'a, io::Result<AgentReply>> {
        Box::pin(async move {
            let Some(command) = request.config.agent_cmd.as_deref() else {
                return Ok(AgentReply::ended(CallEnd::Auth {
                    reason: "agent=command needs agent_cmd set in .loop/config".to_owned(),
                }));
            };
            let spec = request.process("sh", ["-c", command], &[]);
            let mut sink = Text {
                output: request.output,
                answer: String::new(),
            };
            let outcome = process::run(
                &spec,
                request.limits,
                Some(request.raw),
                &mut sink,
                request.cancel,
            )
            .await?;
            let end = match stopped(outcome.ended, &request.limits) {
                Some(end) => end,
                None if outcome.exit_code == Some(0) => CallEnd::Success,
                None => CallEnd::Failed {
                    reason: format!(
                        "agent_cmd exited with {}{}",
                        outcome
                            .exit_code
                            .map_or_else(|| "a signal".to_owned(), |c| format!("status {c}")),
                        last_line(&outcome.stderr_tail)
                            .map(|line| format!(": {line}"))
                            .unwrap_or_default()
                    ),
                },
            };
            Ok(AgentReply {
                end,
                answer: sink.answer,
                exit_code: outcome.exit_code,
                process_end: outcome.ended,
                figures: CallFigures::default(),
            })
        })
    }
}

fn last_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).rfind(|line| !line.is_empty())
}
