//! Calls of a run's agent with the files they leave: the text log (`<name>.log` and its
//! `.tail.txt`, live to followers as it is written) and the raw stream (`<name>.jsonl`, made
//! only when the agent printed, a link to the log when it holds the same bytes). The
//! implementation and review steps (one log for every attempt of the step), the naming call
//! and the postmortem's analyses all call through here.

use std::io;
use std::path::Path;

use loop_core::StepId;
use loop_core::event::ArtifactWritten;
use loop_core::layout::tail_path_of;
use loop_core::step::OutputFile;
use tokio_util::sync::CancellationToken;

use crate::agent::{Agent, AgentReply, AgentRequest, Session};
use crate::process::Limits;
use crate::raw_stream::RawStream;
use crate::run_context::RunContext;
use crate::services::Services;
use crate::step_output::StepOutput;

/// One log of agent calls, open for writing.
#[derive(Debug)]
pub(crate) struct CallLog {
    output: StepOutput,
    log_name: String,
    raw_name: String,
    raw: RawStream,
}

/// What one call asks of the agent.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ask<'a> {
    pub prompt: &'a str,
    /// The prompt as a file in the run directory (`$LOOP_PROMPT_FILE`).
    pub prompt_file: &'a Path,
    pub model: &'a str,
    pub env: &'a [(String, String)],
    pub limits: Limits,
    /// The agent session to run in, when the runtime names it.
    pub session: Option<&'a Session>,
    /// Where the agent runs, when not in the run's working tree (a scratch directory).
    pub cwd: Option<&'a Path>,
}

impl CallLog {
    /// Opens `<log_name>` (a `.log` name in the run directory) for the calls of `step_id`.
    pub fn open(
        services: &Services,
        run: &RunContext,
        step_id: StepId,
        log_name: &str,
    ) -> io::Result<CallLog> {
        let output = StepOutput::create(
            run.run_id,
            step_id,
            &run.files.path(log_name),
            services.live.clone(),
        )?;
        let raw_name = raw_name_of(log_name);
        Ok(CallLog {
            output,
            log_name: log_name.to_owned(),
            raw: RawStream::new(run.files.path(&raw_name)),
            raw_name,
        })
    }

    /// One call of `agent`, its output appended to the log.
    pub async fn call(
        &mut self,
        services: &Services,
        run: &RunContext,
        agent: &dyn Agent,
        ask: Ask<'_>,
        cancel: &CancellationToken,
    ) -> io::Result<AgentReply> {
        agent
            .call(AgentRequest {
                prompt: ask.prompt,
                prompt_file: ask.prompt_file,
                model: ask.model,
                workdir: ask.cwd.unwrap_or(&run.workdir),
                env: ask.env,
                config: &run.config,
                raw: &self.raw,
                output: &mut self.output,
                limits: ask.limits,
                cancel,
                now_ms: services.clock.now_ms(),
                session: ask.session.cloned(),
            })
            .await
    }

    /// Finishes the log's files, waiting while the disk is full (the run shows
    /// `storage_full`), until they are written, another error, or `cancel`.
    pub async fn settle(
        &mut self,
        services: &Services,
        run: &RunContext,
        cancel: &CancellationToken,
    ) -> io::Result<()> {
        let log_path = run.files.path(&self.log_name);
        let clock = &services.clock;
        services
            .storage
            .patiently(
                run.run_id,
                &self.log_name,
                || clock.now_ms(),
                cancel,
                || {
                    let (bytes, _) = self.output.finish()?;
                    self.raw.finish(&log_path, bytes).map(drop)
                },
            )
            .await
    }

    /// Closes the log: the output file as written, and the artifacts to record (the log, its
    /// tail and the raw stream, whichever exist, of kinds `<kind>log`, `<kind>tail`, `<kind>raw`).
    pub fn close(
        &mut self,
        run: &RunContext,
        kind: &str,
    ) -> io::Result<(OutputFile, Vec<ArtifactWritten>)> {
        let log_path = run.files.path(&self.log_name);
        let (bytes, lines) = self.output.finish()?;
        self.raw.finish(&log_path, bytes)?;
        let mut artifacts = Vec::new();
        for (suffix, name) in [
            ("log", self.log_name.clone()),
            ("tail", tail_path_of(&self.log_name)),
            ("raw", self.raw_name.clone()),
        ] {
            if run.files.path(&name).is_file() {
                artifacts.extend(run.files.record(&format!("{kind}{suffix}"), &name)?);
            }
        }
        let output = OutputFile {
            path: run
                .files
                .path(&self.log_name)
                .to_string_lossy()
                .into_owned(),
            bytes,
            lines,
        };
        Ok((output, artifacts))
    }
}

/// `iter-01-impl.log` → `iter-01-impl.jsonl`.
fn raw_name_of(log_name: &str) -> String {
    match log_name.strip_suffix(".log") {
        Some(stem) => format!("{stem}.jsonl"),
        None => format!("{log_name}.jsonl"),
    }
}
