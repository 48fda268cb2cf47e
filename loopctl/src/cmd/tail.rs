//! Following a run of the daemon (`tail`, `run --follow`): the run's events, its steps'
//! output and its view, each read by a thread of its own and shown through one [`Live`] view.
//! An output stream lost is resumed at the last byte shown (`Last-Event-ID: <step>:<offset>`),
//! so nothing is missed or repeated; a step's closing line waits (briefly) for the end of its
//! output, so that it comes after it.

use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use loop_api::meta::OutputChunk;
use loop_client::ClientError;
use loop_client::blocking::Client;
use loop_core::event::Event;
use loop_core::projection::{RunView, StepView};
use loop_core::{EventRecord, RunId, RunStatus, StepId};

use crate::connect::{named, reconnect_notes, retrying};
use crate::interrupt;
use crate::live::Live;
use crate::output::Output;
use crate::render::{closing, exit_status, summary};
use crate::run_ref;

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
        for line in closing(&view) {
            out.note(&line);
        }
        return Ok(exit_status(&view));
    }
    Ok(ExitCode::SUCCESS)
}

/// What the threads of a live view hand to the one that draws.
enum Input {
    Event(Box<EventRecord>),
    Chunk(OutputChunk),
    /// The output of this step is being shown.
    OutputOf(StepId),
    /// The output of this step is shown to its end.
    OutputDone(StepId),
    View(Box<RunView>),
    /// A note of the follower's (a PENDING run's reason).
    Note(String),
    /// The output follower is done: the run as it was then.
    Done(anyhow::Result<Box<RunView>>),
    /// The run's event stream ended (after the run's end): no event is to come.
    EventsEnded,
}

/// How long an event after a step's end waits for the end of the step's output.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);
/// How often the run view is read for the waits no event records (the account, the queue).
const VIEW_EVERY: Duration = Duration::from_secs(2);
/// How often the status line's clock moves.
const TICK: Duration = Duration::from_millis(500);

/// Shows run `id` from `start` through one live view: one step, or with `across` every step
/// until the run ends. The run as it was when following stopped.
pub fn follow_output(
    client: &Client,
    id: RunId,
    across: bool,
    start: Start,
    out: &Output,
) -> anyhow::Result<RunView> {
    let steps = retrying(client, out, || client.steps(id)).map_err(|error| named(error, id))?;
    let view = retrying(client, out, || client.run(id)).map_err(|error| named(error, id))?;
    let mut live = Live::new(&view, &steps, out, true);
    if view.status == RunStatus::Paused {
        live.note(&format!(
            "── run paused: `loopctl resume {}` goes on",
            view.name
        ));
    }
    let (send, inputs) = mpsc::channel::<Input>();
    // The readers end when the drawing thread drops `inputs`: their next send fails.
    {
        let (client, send, after) = (client.clone(), send.clone(), view.last_seq);
        std::thread::spawn(move || {
            let events = client
                .events(Some(id), after)
                .on_reconnect(reconnect_notes(&client));
            for record in events {
                match record {
                    Ok(record) => {
                        if send.send(Input::Event(Box::new(record))).is_err() {
                            return;
                        }
                    }
                    Err(ClientError::Undecodable { .. }) => {}
                    Err(_) => break,
                }
            }
            let _ = send.send(Input::EventsEnded);
        });
    }
    {
        let (client, send) = (client.clone(), send.clone());
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(VIEW_EVERY);
                let Ok(view) = client.run(id) else { continue };
                let over = view.status.is_terminal();
                if send.send(Input::View(Box::new(view))).is_err() || over {
                    return;
                }
            }
        });
    }
    {
        let (client, send) = (client.clone(), send.clone());
        let quiet = Output::new(out.json, out.is_raw());
        std::thread::spawn(move || {
            let follower = Follower {
                client: &client,
                id,
                out: &quiet,
                send: &send,
            };
            let done = follower.follow(steps, view, across, start).map(Box::new);
            let _ = send.send(Input::Done(done));
        });
    }
    drop(send);
    draw(&mut live, &inputs)
}

/// Draws what the readers hand over until the output follower is done, then the events that
/// close the run.
fn draw(live: &mut Live<'_>, inputs: &mpsc::Receiver<Input>) -> anyhow::Result<RunView> {
    let mut showing: Option<StepId> = None;
    // Events held until the output of the step they follow is shown, and since when.
    let mut held: Vec<EventRecord> = Vec::new();
    let mut held_since: Option<Instant> = None;
    let mut ended: Option<(RunView, Instant)> = None;
    let mut seen_end = false;
    loop {
        let input = match inputs.recv_timeout(TICK) {
            Ok(input) => Some(input),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            // Every reader is gone: what was shown is all there is.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                release(live, &mut held, &mut held_since);
                live.close();
                return match ended {
                    Some((view, _)) => Ok(view),
                    None => {
                        anyhow::bail!(
                            "the live view's readers stopped before the run's output was shown"
                        )
                    }
                };
            }
        };
        match input {
            Some(Input::Event(record)) => {
                seen_end |= record.event.is_terminal();
                let waits_for_output = matches!(
                    &record.event,
                    Event::StepFinished(step) if Some(step.step_id) == showing
                );
                if waits_for_output || !held.is_empty() {
                    held_since.get_or_insert_with(Instant::now);
                    held.push(*record);
                } else {
                    live.event(&record);
                }
            }
            Some(Input::Chunk(chunk)) => live.output(&chunk),
            Some(Input::OutputOf(step)) => showing = Some(step),
            Some(Input::OutputDone(step)) => {
                if showing == Some(step) {
                    showing = None;
                }
                release(live, &mut held, &mut held_since);
            }
            Some(Input::View(view)) => live.view(&view),
            Some(Input::Note(text)) => live.note(&text),
            Some(Input::Done(result)) => ended = Some((*result?, Instant::now())),
            Some(Input::EventsEnded) => seen_end = true,
            None => live.tick(),
        }
        if held_since.is_some_and(|since| since.elapsed() >= OUTPUT_GRACE) {
            release(live, &mut held, &mut held_since);
        }
        if let Some((view, at)) = &ended {
            // The run's closing events (its end, the merge) may still be on their way.
            let settled = seen_end || !view.status.is_terminal() || at.elapsed() >= OUTPUT_GRACE;
            if settled {
                release(live, &mut held, &mut held_since);
                // Events already here are shown before the summary.
                while let Ok(Input::Event(record)) = inputs.try_recv() {
                    live.event(&record);
                }
                live.close();
                return Ok(view.clone());
            }
        }
    }
}

fn release(live: &mut Live<'_>, held: &mut Vec<EventRecord>, since: &mut Option<Instant>) {
    for record in held.drain(..) {
        live.event(&record);
    }
    *since = None;
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

/// Reads the steps' output in order and hands it over.
struct Follower<'a> {
    client: &'a Client,
    id: RunId,
    /// Where reconnection notes go.
    out: &'a Output,
    send: &'a mpsc::Sender<Input>,
}

impl Follower<'_> {
    /// Each step's output from `start`, one step or with `across` every step until the run
    /// ends; the run as it was when following stopped.
    fn follow(
        &self,
        steps: Vec<StepView>,
        view: RunView,
        across: bool,
        start: Start,
    ) -> anyhow::Result<RunView> {
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
            let view = self.run()?;
            let steps = self.steps()?;
            let (step, offset) = match cursor {
                Some(at) => at,
                None => match steps.get(next) {
                    Some(step) => {
                        self.hand(Input::OutputOf(step.id))?;
                        (step.id, 0)
                    }
                    None if view.status.is_terminal() || (!across && shown_steps > 0) => {
                        return Ok(view);
                    }
                    None => {
                        if noted != Some(view.status) && view.status == RunStatus::Pending {
                            self.hand(Input::Note(format!(
                                "── run {}",
                                pending(&view, "its output follows when its first step starts")
                            )))?;
                        }
                        noted = Some(view.status);
                        self.next_event(&view)?;
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
                self.hand(Input::OutputDone(step))?;
                continue;
            }
            let mut at = offset;
            let streamed = self.stream(step, &mut at);
            cursor = Some((step, at));
            match streamed {
                Ok(()) if over => {
                    cursor = None;
                    next += 1;
                    shown_steps += 1;
                    noted = None;
                    self.hand(Input::OutputDone(step))?;
                }
                // The stream of a running step ended early (the daemon is stopping): look again
                // shortly rather than at once.
                Ok(()) if at == offset => std::thread::sleep(Duration::from_millis(200)),
                Ok(()) => {}
                Err(error) => return Err(named(error, self.id)),
            }
        }
    }

    /// Hands `input` to the drawing thread; an error when it stopped listening.
    fn hand(&self, input: Input) -> anyhow::Result<()> {
        self.send
            .send(input)
            .map_err(|_| anyhow::anyhow!("the live view stopped"))
    }

    fn run(&self) -> anyhow::Result<RunView> {
        retrying(self.client, self.out, || self.client.run(self.id))
            .map_err(|error| named(error, self.id))
    }

    fn steps(&self) -> anyhow::Result<Vec<StepView>> {
        retrying(self.client, self.out, || self.client.steps(self.id))
            .map_err(|error| named(error, self.id))
    }

    /// Hands a step's output over from `offset`, moving `offset` past every byte handed, until
    /// the stream ends (it resumes by itself after a lost connection).
    fn stream(&self, step: StepId, offset: &mut u64) -> Result<(), ClientError> {
        let output = self.client.output(self.id, Some(step), *offset);
        for chunk in output.on_reconnect(reconnect_notes(self.client)) {
            let mut chunk = chunk?;
            let end = chunk.offset + chunk.content.len() as u64;
            if end <= *offset {
                continue;
            }
            // Never hand a byte twice, even from a chunk that overlaps what was handed.
            let skip = usize::try_from(offset.saturating_sub(chunk.offset)).unwrap_or(usize::MAX);
            if skip > 0 {
                chunk.content = chunk.content.get(skip..).unwrap_or("").to_owned();
                chunk.offset = *offset;
            }
            *offset = end;
            if self.send.send(Input::Chunk(chunk)).is_err() {
                return Ok(());
            }
        }
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
