//! Following a run's agent output from the daemon (`tail`, `run --follow`): each step's output
//! stream in turn, a status line on stderr as each step starts, and a lost connection resumed
//! at the last byte shown (`Last-Event-ID: <step>:<offset>`), so nothing is missed or repeated.

use std::process::ExitCode;
use std::time::Duration;

use loop_client::ClientError;
use loop_client::blocking::Client;
use loop_core::projection::{RunView, StepView};
use loop_core::{RunId, RunStatus, StepId};

use crate::connect::{named, reconnect_notes, retrying};
use crate::human::{self, duration};
use crate::interrupt;
use crate::output::Output;
use crate::render::summary;
use crate::run_ref;
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
    let run = run_ref::on_daemon(client, text)?;
    if follow {
        interrupt::leave_running(&run.name);
    }
    let view = follow_output(client, run.id, follow, Start::Current, out)?;
    if follow {
        out.note(&summary(&view));
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
) -> anyhow::Result<RunView> {
    let follower = Follower {
        client,
        id,
        out,
        colour: Colour::stderr(),
    };
    let steps = follower.steps()?;
    let view = follower.run()?;
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
        let view = follower.run()?;
        let steps = follower.steps()?;
        let (step, offset) = match cursor {
            Some(at) => at,
            None => match steps.get(next) {
                Some(step) => {
                    follower.announce(step, &view);
                    (step.id, 0)
                }
                None if view.status.is_terminal() || (!across && shown_steps > 0) => {
                    return Ok(view);
                }
                None => {
                    if noted != Some(view.status) {
                        follower.waiting(&view);
                        noted = Some(view.status);
                    }
                    follower.next_event(&view)?;
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
            Err(error) => return Err(named(error, id)),
        }
    }
}

/// Why a PENDING run has not started, then what follows, for a person waiting on it.
pub fn pending(view: &RunView, follows: &str) -> String {
    let why = view
        .waiting
        .as_ref()
        .map_or("about to start", |waiting| waiting.reason.as_str());
    format!("PENDING ({why}); {follows}")
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
            RunStatus::Pending => pending(view, "its output follows when its first step starts"),
            // Between two steps: nothing worth a line.
            _ => return,
        };
        self.out
            .note(&self.colour.paint(Paint::Dim, &format!("── run {why}")));
    }

    fn run(&self) -> anyhow::Result<RunView> {
        retrying(self.client, self.out, || self.client.run(self.id))
            .map_err(|error| named(error, self.id))
    }

    fn steps(&self) -> anyhow::Result<Vec<StepView>> {
        retrying(self.client, self.out, || self.client.steps(self.id))
            .map_err(|error| named(error, self.id))
    }

    /// Shows a step's output from `offset`, moving `offset` past every byte shown, until the
    /// stream ends (it resumes by itself after a lost connection).
    fn stream(&self, step: StepId, offset: &mut u64) -> Result<(), ClientError> {
        let output = self.client.output(self.id, Some(step), *offset);
        for chunk in output.on_reconnect(reconnect_notes(self.client)) {
            let chunk = chunk?;
            let end = chunk.offset + chunk.content.len() as u64;
            if end <= *offset {
                continue;
            }
            // Never show a byte twice, even from a chunk that overlaps what was shown.
            let skip = usize::try_from(offset.saturating_sub(chunk.offset)).unwrap_or(usize::MAX);
            let text = chunk.content.get(skip..).unwrap_or("");
            if self.out.json {
                let mut line = chunk.clone();
                if skip > 0 {
                    line.offset = *offset;
                    line.content = text.to_owned();
                }
                self.out
                    .document(&serde_json::to_value(&line).unwrap_or_default());
            } else {
                self.out.agent(text);
            }
            *offset = end;
        }
        self.out.agent_end();
        Ok(())
    }

    /// Blocks until the run's log grows past what `view` has seen.
    fn next_event(&self, view: &RunView) -> anyhow::Result<()> {
        let mut events = self
            .client
            .events(Some(self.id), view.last_seq)
            .on_reconnect(reconnect_notes(self.client));
        match events.next() {
            Some(Err(error)) if !matches!(error, ClientError::Undecodable { .. }) => {
                Err(named(error, self.id))
            }
            _ => Ok(()),
        }
    }
}
