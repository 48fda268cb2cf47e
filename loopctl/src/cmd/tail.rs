//! Following a run's agent output from the daemon (`tail`, `run --follow`): each step's output
//! stream in turn, a status line on stderr as each step starts, and a lost connection resumed
//! at the last byte shown (`Last-Event-ID: <step>:<offset>`), so nothing is missed or repeated.

use std::process::ExitCode;
use std::time::Duration;

use loop_core::projection::{RunView, StepView};
use loop_core::{RunId, RunStatus, StepId};
use serde_json::Value;

use crate::client::{Client, ClientError};
use crate::cmd::runs::{self, cut, lost, retrying};
use crate::human::{self, duration};
use crate::output::Output;
use crate::table::{Colour, Paint};

/// Where following starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The run's first step: everything it printed.
    First,
    /// The step in progress, else the last one.
    Current,
}

/// `loopctl tail RUN [-f]`.
pub fn tail(client: &Client, text: &str, follow: bool, out: &Output) -> anyhow::Result<ExitCode> {
    let id = runs::resolve(client, text)?;
    let (_, view) = follow_output(client, id, follow, Start::Current, out)?;
    if follow {
        out.note(&runs::summary(&view));
    }
    Ok(ExitCode::SUCCESS)
}

/// Shows run `id`'s output from `start`: one step, or with `across` every step until the run
/// ends. The run as it was when following stopped.
pub fn follow_output(
    client: &Client,
    id: RunId,
    across: bool,
    start: Start,
    out: &Output,
) -> anyhow::Result<(Value, RunView)> {
    let follower = Follower {
        client,
        id,
        out,
        colour: Colour::stderr(),
    };
    let steps = retrying(client, out, || runs::steps(client, id))?.1;
    let (_, view) = retrying(client, out, || runs::get(client, id))?;
    let mut next = match start {
        Start::First => 0,
        Start::Current => view
            .current_step
            .as_ref()
            .and_then(|current| steps.iter().position(|s| s.id == current.id))
            .unwrap_or(steps.len().saturating_sub(1)),
    };
    let mut cursor: Option<(StepId, u64)> = None;
    let mut shown_steps = 0;
    let mut noted: Option<RunStatus> = None;
    loop {
        let (run, view) = retrying(client, out, || runs::get(client, id))?;
        let steps = retrying(client, out, || runs::steps(client, id))?.1;
        let (step, offset) = match cursor {
            Some(at) => at,
            None => match steps.get(next) {
                Some(step) => {
                    follower.announce(step, &view);
                    (step.id, 0)
                }
                None if view.status.is_terminal() || (!across && shown_steps > 0) => {
                    return Ok((run, view));
                }
                None => {
                    if noted != Some(view.status) {
                        follower.waiting(&view);
                        noted = Some(view.status);
                    }
                    if let Err(error) = follower.next_event(&view) {
                        follower.recover(error)?;
                    }
                    continue;
                }
            },
        };
        // A step known to be over before its stream is opened is read to its end by it.
        let over = view.status.is_terminal()
            || steps
                .iter()
                .find(|s| s.id == step)
                .is_none_or(|s| s.status.is_final());
        if over && superseded(&steps, step) {
            // A step run again (after an interruption) writes the same log file anew: what
            // the interrupted attempt wrote past `offset` is gone, and reading on would show
            // the new attempt's bytes twice. Its own stream shows them.
            cursor = None;
            next += 1;
            continue;
        }
        let mut at = offset;
        let streamed = follower.stream(step, &mut at);
        cursor = Some((step, at));
        match streamed {
            Ok(()) if over => {
                cursor = None;
                next += 1;
                shown_steps += 1;
                noted = None;
            }
            // The stream of a running step ended early (the daemon is stopping): look again
            // shortly rather than at once.
            Ok(()) if at == offset => std::thread::sleep(Duration::from_millis(200)),
            Ok(()) => {}
            Err(error) => follower.recover(error)?,
        }
    }
}

/// Whether a later step of `steps` runs the same phase of the same iteration as `step`.
fn superseded(steps: &[StepView], step: StepId) -> bool {
    let mut later = steps.iter().skip_while(|s| s.id != step);
    let Some(this) = later.next() else {
        return false;
    };
    later.any(|s| s.iteration == this.iteration && s.phase == this.phase)
}

struct Follower<'a> {
    client: &'a Client,
    id: RunId,
    out: &'a Output,
    colour: Colour,
}

impl Follower<'_> {
    /// The status line of a step that starts being shown.
    fn announce(&self, step: &StepView, view: &RunView) {
        let elapsed = (human::now_ms() - view.created_ms).max(0) as u64;
        let mut line = format!(
            "── {} · iteration {} · attempt {} · {} elapsed",
            step.phase.as_str(),
            step.iteration,
            step.attempt,
            duration(elapsed)
        );
        if view.tasks_total > 0 {
            line.push_str(&format!(
                " · {}/{} tasks",
                view.tasks_done, view.tasks_total
            ));
        }
        if step.status.is_final() {
            line.push_str(&format!(" · {}", step.status.as_str()));
        }
        self.out.note(&self.colour.paint(Paint::Dim, &line));
    }

    /// A status line while no step runs.
    fn waiting(&self, view: &RunView) {
        let why = match view.status {
            RunStatus::Paused => format!("paused: `loopctl resume {}` goes on", view.id),
            // Pending (queued, or about to start) or between two steps: nothing worth a line.
            _ => return,
        };
        self.out
            .note(&self.colour.paint(Paint::Dim, &format!("── run {why}")));
    }

    /// Shows a step's output from `offset`, moving `offset` past every byte shown, until the
    /// stream ends.
    fn stream(&self, step: StepId, offset: &mut u64) -> Result<(), ClientError> {
        let resume = format!("{step}:{offset}");
        let mut frames = self
            .client
            .stream(&format!("/runs/{}/output", self.id), Some(&resume))?;
        while let Some(frame) = frames.next_frame().map_err(|e| cut(self.client, &e))? {
            if frame.event.as_deref() != Some("output") {
                continue;
            }
            let Ok(chunk) = serde_json::from_str::<Value>(&frame.data) else {
                continue;
            };
            let content = chunk["content"].as_str().unwrap_or("");
            let start = chunk["offset"].as_u64().unwrap_or(*offset);
            let end = frame
                .id
                .as_deref()
                .and_then(|id| id.rsplit_once(':'))
                .and_then(|(_, end)| end.parse::<u64>().ok())
                .unwrap_or(start + content.len() as u64);
            if end <= *offset {
                continue;
            }
            // Never show a byte twice, even from a chunk that overlaps what was shown.
            let skip = usize::try_from(offset.saturating_sub(start)).unwrap_or(usize::MAX);
            let text = content.get(skip..).unwrap_or("");
            if self.out.json {
                let mut line = chunk.clone();
                if skip > 0 {
                    line["offset"] = Value::from(*offset);
                    line["content"] = Value::from(text);
                }
                self.out.document(&line);
            } else {
                self.out.raw(text);
            }
            *offset = end;
        }
        Ok(())
    }

    /// Blocks until the run's log grows past what `view` has seen (or its stream ends).
    fn next_event(&self, view: &RunView) -> Result<(), ClientError> {
        let after = view.last_seq.0.to_string();
        let mut frames = self
            .client
            .stream(&format!("/runs/{}/events", self.id), Some(&after))?;
        frames.next_frame().map_err(|e| cut(self.client, &e))?;
        Ok(())
    }

    /// Waits out a lost connection; any other error ends following.
    fn recover(&self, error: ClientError) -> anyhow::Result<()> {
        if error.is_transient() {
            lost(self.client, self.out)
        } else {
            Err(runs::named(error, self.id))
        }
    }
}
