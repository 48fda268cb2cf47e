//! Verification: the project's own commands, run after each iteration.

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::process::{self, Ended, Limits, LineEffect, LineSink, Spec};
use crate::step_output::StepOutput;

/// Lines of a failing command kept for `runner-notes.txt`.
pub const NOTE_LINES: usize = 120;

/// How one verification command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandRun {
    pub command: String,
    pub exit_code: Option<i32>,
    pub duration: Duration,
    pub ended: Ended,
    /// The last lines of its output.
    pub tail: Vec<String>,
    /// Its last non-empty line on stdout (an experiment's measurement reads its number there).
    pub last_stdout: Option<String>,
}

impl CommandRun {
    pub fn passed(&self) -> bool {
        self.ended == Ended::Exited && self.exit_code == Some(0)
    }
}

struct Capture<'a> {
    output: &'a mut StepOutput,
    tail: VecDeque<String>,
    last_stdout: Option<String>,
}

impl Capture<'_> {
    fn keep(&mut self, line: &str) {
        self.output.line(line);
        if self.tail.len() == NOTE_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_owned());
    }
}

impl LineSink for Capture<'_> {
    fn stdout_line(&mut self, line: &str) -> LineEffect {
        if !line.trim().is_empty() {
            self.last_stdout = Some(line.to_owned());
        }
        self.keep(line);
        LineEffect::Continue
    }

    fn stderr_line(&mut self, line: &str) {
        self.keep(line);
    }

    fn batch_start(&mut self) {
        self.output.hold();
    }

    fn batch_end(&mut self) {
        self.output.release();
    }
}

/// Runs one command with `sh -c` in `workdir`, its output into the step's log.
pub async fn run_command(
    command: &str,
    workdir: &Path,
    env: &[(String, String)],
    timeout: Option<Duration>,
    output: &mut StepOutput,
    cancel: &CancellationToken,
) -> std::io::Result<CommandRun> {
    output.line(&format!("$ {command}"));
    let mut spec = Spec::shell(command, workdir);
    spec.env = env.iter().map(|(k, v)| (k.into(), v.into())).collect();
    let mut capture = Capture {
        output,
        tail: VecDeque::new(),
        last_stdout: None,
    };
    let started = Instant::now();
    let limits = Limits {
        timeout,
        ..Limits::default()
    };
    let outcome = process::run(&spec, limits, None, &mut capture, cancel).await?;
    let run = CommandRun {
        command: command.to_owned(),
        exit_code: outcome.exit_code,
        duration: started.elapsed(),
        ended: outcome.ended,
        tail: capture.tail.into(),
        last_stdout: capture.last_stdout,
    };
    let verdict = match (run.ended, run.exit_code) {
        (Ended::TimedOut, _) => format!(
            "timed out after {} s",
            timeout.unwrap_or_default().as_secs()
        ),
        (_, Some(code)) => format!("exit {code}"),
        (_, None) => "killed".to_owned(),
    };
    capture
        .output
        .line(&format!("[{verdict} in {} ms]", run.duration.as_millis()));
    Ok(run)
}

/// The text of `runner-notes.txt` for failing commands.
pub fn runner_notes(failed: &[CommandRun]) -> String {
    let mut text = String::from(
        "Verification failed. Fix these before anything else; they run after every iteration.\n",
    );
    for run in failed {
        text.push_str(&format!(
            "\n## `{}` ({})\n\nLast {} lines of its output:\n\n```\n",
            run.command,
            match run.exit_code {
                Some(code) => format!("exit {code}"),
                None => "timed out or killed".to_owned(),
            },
            run.tail.len()
        ));
        for line in &run.tail {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str("```\n");
    }
    text
}
