//! Agents: one trait, an adapter per command-line agent.
//!
//! An adapter turns a prompt into a supervised process and its output into an [`AgentReply`]:
//! the answer text, how the call ended (success, usage limit, transient, auth, failure), and
//! what it cost. Retries, backoff and waits are the driver's business, not the adapter's.

mod claude;
mod codex;
mod command;
mod demo;
mod json_stream;
mod progress;

use std::ffi::OsString;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;

use loop_core::agent_stream::{CallFigures, When};
use loop_core::config::RunConfig;
use loop_core::event::Paid;
use tokio_util::sync::CancellationToken;

use crate::process::{Ended, Limits, Spec};
use crate::raw_stream::RawStream;
use crate::step_output::StepOutput;

pub use claude::ClaudeAgent;
pub use codex::CodexAgent;
pub use command::CommandAgent;
pub use demo::DemoAgent;

/// A boxed future, so agents can be chosen at run time.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub use loop_core::agent_stream::CallEnd;

/// One call of an agent.
#[derive(Debug)]
pub struct AgentRequest<'a> {
    pub prompt: &'a str,
    /// The prompt as a file too, for agents that want a path (`$LOOP_PROMPT_FILE`).
    pub prompt_file: &'a Path,
    pub model: &'a str,
    pub workdir: &'a Path,
    /// `LOOP_RUN_ID`, `LOOP_ITERATION`, … for the child's environment.
    pub env: &'a [(String, String)],
    pub config: &'a RunConfig,
    /// Where the raw stream goes (`iter-NN-<phase>.jsonl`).
    pub raw: &'a RawStream,
    /// Text output: the `.log`, its tail and the live channel.
    pub output: &'a mut StepOutput,
    pub limits: Limits,
    pub cancel: &'a CancellationToken,
    /// The time now, for turning "resets in 2 hours" into a time.
    pub now_ms: i64,
    /// The agent session to run in, for agents that let the caller name it (Claude Code);
    /// `None` lets the adapter start one of its own.
    pub session: Option<Session>,
}

/// Which agent session a call runs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Session {
    /// A new session with this id.
    New(String),
    /// Go on with an earlier session (its call was interrupted).
    Resume(String),
}

impl Session {
    pub fn id(&self) -> &str {
        match self {
            Session::New(id) | Session::Resume(id) => id,
        }
    }
}

impl AgentRequest<'_> {
    /// The process of this call: `program args` in the working directory, the prompt on stdin,
    /// the run's environment plus `LOOP_PROMPT_FILE`, less `env_remove`.
    pub(crate) fn process(
        &self,
        program: impl Into<OsString>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
        env_remove: &[&str],
    ) -> Spec {
        let mut env: Vec<(OsString, OsString)> =
            self.env.iter().map(|(k, v)| (k.into(), v.into())).collect();
        env.push(("LOOP_PROMPT_FILE".into(), self.prompt_file.into()));
        Spec {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            cwd: self.workdir.to_owned(),
            env,
            env_remove: env_remove.iter().map(Into::into).collect(),
            stdin: self.prompt.as_bytes().to_vec(),
        }
    }
}

/// What a call produced.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentReply {
    pub end: CallEnd,
    /// The answer text, for completion detection and the watchdog.
    pub answer: String,
    pub exit_code: Option<i32>,
    pub process_end: Ended,
    /// Cost, tokens, session and what else the agent said of the call, however it ended.
    pub figures: CallFigures,
}

impl AgentReply {
    /// A call that ended as `end` before any answer: no output, no figures.
    pub fn ended(end: CallEnd) -> AgentReply {
        AgentReply {
            end,
            answer: String::new(),
            exit_code: None,
            process_end: Ended::Exited,
            figures: CallFigures::default(),
        }
    }

    /// What the call cost, as recorded on the event that follows it.
    pub fn paid(&self) -> Paid {
        Paid {
            cost_usd: self.figures.cost_usd,
            tokens: self.figures.tokens,
            cost_estimated: self.figures.cost_estimated,
        }
    }
}

/// The moment of a request, with the machine's time zone (agents print reset times in it).
pub(crate) fn when(request: &AgentRequest<'_>) -> When {
    When {
        now_ms: request.now_ms,
        local: jiff::tz::TimeZone::system(),
    }
}

/// A command-line coding agent.
pub trait Agent: Send + Sync + std::fmt::Debug {
    fn call<'a>(&'a self, request: AgentRequest<'a>) -> BoxFuture<'a, io::Result<AgentReply>>;

    /// Whether a call can go on with an earlier session ([`Session::Resume`]).
    fn resumes(&self) -> bool {
        false
    }
}

/// The end of a call that was stopped rather than finished.
pub(crate) fn stopped(ended: Ended, limits: &Limits) -> Option<CallEnd> {
    let reason = match ended {
        Ended::Exited | Ended::StoppedAfterDone => return None,
        Ended::Canceled => "stopped".to_owned(),
        Ended::TimedOut => format!(
            "no answer within {} s (claude_timeout_sec)",
            limits.timeout.unwrap_or_default().as_secs()
        ),
        Ended::Idle => format!(
            "no output for {} s (agent_idle_timeout_sec)",
            limits.idle.unwrap_or_default().as_secs()
        ),
    };
    Some(CallEnd::Failed { reason })
}
