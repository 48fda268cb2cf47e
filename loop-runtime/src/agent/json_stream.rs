//! What the two JSON-stream adapters (Claude Code, Codex) share: the sink their process runs
//! into (long lines joined, stderr marked, a heartbeat while quiet, one write per read) and the
//! run itself, up to how the call ended. Each adapter brings only its [`Transcribing`]: how a
//! line of its stream is read and what of it a person following the step sees.

use std::io;
use std::time::Duration;

use loop_core::agent_stream::{CallEnd, When};
use loop_core::event::Tokens;

use crate::agent::progress::heartbeat;
use crate::agent::{AgentRequest, stopped, when};
use crate::process::{self, Ended, LineEffect, LineJoiner, LineSink, Outcome, Spec};
use crate::step_output::StepOutput;

/// An agent's stream parser, as the shared sink drives it.
pub(super) trait Transcribing: Send {
    /// What the stream is read into.
    type Transcript;

    /// Reads one whole line (`None`: one too long to join, dropped) and prints what it added;
    /// [`LineEffect::Done`] once the final event is in.
    fn feed(&mut self, line: Option<&str>, output: &mut StepOutput) -> LineEffect;

    /// The tokens used so far, for the heartbeat.
    fn tokens(&self) -> Option<Tokens>;

    fn finish(self) -> Self::Transcript;
}

/// How a call ended, read from what it printed: the agent's own `classify`.
pub(super) type Classify<T> = fn(&T, Option<i32>, &str, &When) -> CallEnd;

struct Printing<'a, S> {
    output: &'a mut StepOutput,
    stream: S,
    joiner: LineJoiner,
}

impl<S: Transcribing> LineSink for Printing<'_, S> {
    fn stdout_part(&mut self, part: &str) {
        self.joiner.part(part);
    }

    fn stdout_line(&mut self, line: &str) -> LineEffect {
        let line = self.joiner.line(line);
        self.stream.feed(line.as_deref(), self.output)
    }

    fn stderr_line(&mut self, line: &str) {
        self.output.line(&format!("[stderr] {line}"));
    }

    fn quiet(&mut self, running: Duration) {
        self.output
            .line(&heartbeat(running, self.stream.tokens(), None));
    }

    fn batch_start(&mut self) {
        self.output.hold();
    }

    fn batch_end(&mut self) {
        self.output.release();
    }
}

/// The call `spec` runs, read by `stream`: what the process did, the transcript, and how the
/// call ended (a stop by the runtime first, then what the agent printed, by `classify`).
pub(super) async fn call<S: Transcribing>(
    spec: &Spec,
    request: &mut AgentRequest<'_>,
    stream: S,
    classify: Classify<S::Transcript>,
) -> io::Result<(Outcome, S::Transcript, CallEnd)> {
    let mut sink = Printing {
        output: &mut *request.output,
        stream,
        joiner: LineJoiner::default(),
    };
    let outcome = process::run(
        spec,
        request.limits,
        Some(request.raw),
        &mut sink,
        request.cancel,
    )
    .await?;
    let transcript = sink.stream.finish();
    // Stopped by the runtime after the final event: the exit code is the stop's, not the
    // agent's, and says nothing about the call.
    let exit_code = match outcome.ended {
        Ended::StoppedAfterDone => None,
        _ => outcome.exit_code,
    };
    let end = match stopped(outcome.ended, &request.limits) {
        Some(end) => end,
        None => classify(&transcript, exit_code, &outcome.stderr_tail, &when(request)),
    };
    Ok((outcome, transcript, end))
}
