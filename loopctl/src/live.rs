//! One renderer for every live view (`run --follow`, `tail`, `exec`, `demo`), driven by the
//! run's events: the agent's output on stdout (escape sequences removed unless `--raw`), a line
//! on stderr for each event worth one ([`lines`]), and on a terminal a status line kept at the
//! bottom and redrawn in place (phase, iteration, attempt, elapsed, tokens, cost, tasks, the
//! wait). Without a terminal, or under `--json`, the same lines come plain and no status line
//! is drawn.

pub mod lines;

use std::io::{IsTerminal, Write};

use loop_core::EventRecord;
use loop_core::projection::{RunView, StepView};

use crate::escapes::ByStep;
use crate::human::now_ms;
use crate::output::Output;
use crate::table::{Colour, Paint};
use lines::{Line, Status};

/// A live view of one run on this process's stdout and stderr.
#[derive(Debug)]
pub struct Live<'a> {
    out: &'a Output,
    /// Agent output as JSON lines on stdout (`--json` with `run --follow` or `tail`).
    json_lines: bool,
    status: Status,
    /// Draw the status line: stderr is a terminal and `--json` is off.
    tty: bool,
    colour: Colour,
    /// Each step's output cleaned as a stream of its own (`None` under `--raw`).
    text: Option<ByStep>,
    /// A status line is on the screen.
    drawn: bool,
    /// The last agent output did not end its line.
    mid_line: bool,
}

impl<'a> Live<'a> {
    /// A view of the run as `view` and `steps` show it now; `json_lines` prints the agent's
    /// output as JSON lines under `--json`.
    pub fn new(view: &RunView, steps: &[StepView], out: &'a Output, json_lines: bool) -> Live<'a> {
        let tty = !out.json
            && std::io::stderr().is_terminal()
            && std::env::var("TERM").is_ok_and(|term| term != "dumb");
        let mut live = Live {
            out,
            json_lines,
            status: Status::of(view, steps),
            tty,
            colour: Colour::stderr(),
            text: (!out.is_raw()).then(ByStep::default),
            drawn: false,
            mid_line: false,
        };
        // A wait under way when following starts (an account hold, a usage limit met before)
        // gets its line like one that starts later: no event will come to say it. A PENDING
        // run's wait is the queue's, which the follower says itself.
        if view.status != loop_core::RunStatus::Pending
            && let Some(waiting) = &view.waiting
        {
            live.say(&lines::wait_line(waiting, now_ms()));
        }
        live
    }

    /// The run's next event.
    pub fn event(&mut self, record: &EventRecord) {
        if let (loop_core::Event::StepFinished(step), Some(text)) = (&record.event, &mut self.text)
        {
            // A step's output is one stream: an escape it left unfinished ends with it.
            text.end(step.step_id);
        }
        if let Some(line) = self.status.apply(record, now_ms()) {
            self.say(&line);
        }
        self.draw();
    }

    /// What the run view says now (waits the events do not record: the account, the queue).
    pub fn view(&mut self, view: &RunView) {
        if let Some(line) = self.status.view(view, now_ms()) {
            self.say(&line);
        }
        self.draw();
    }

    /// A piece of the agent's output.
    pub fn output(&mut self, chunk: &loop_api::meta::OutputChunk) {
        if self.out.json {
            if self.json_lines {
                self.out.document(chunk);
            }
            return;
        }
        // Cleaned in its step's own stream, so whatever order the chunks and the steps' ends
        // arrive in (`exec` reads them from two channels), no step's unfinished sequence reaches
        // into another step's text.
        let text = match &mut self.text {
            Some(text) => text.clean(chunk.step_id, &chunk.content),
            None => chunk.content.clone(),
        };
        if text.is_empty() {
            return;
        }
        self.erase();
        self.out.raw(&text);
        self.mid_line = !text.ends_with('\n');
        self.draw();
    }

    /// Time passed: the status line's clock moves.
    pub fn tick(&mut self) {
        self.draw();
    }

    /// A note of the caller's, among the lines.
    pub fn note(&mut self, text: &str) {
        self.erase();
        self.out.note(text);
        self.draw();
    }

    /// Takes the status line off the screen, for good.
    pub fn close(&mut self) {
        self.erase();
        self.tty = false;
    }

    fn say(&mut self, line: &Line) {
        self.erase();
        if self.mid_line {
            // The agent's last line was cut short; ours starts on a line of its own.
            self.out.raw("\n");
            self.mid_line = false;
        }
        self.out.note(&self.colour.paint(line.paint, &line.text));
    }

    fn draw(&mut self) {
        if !self.tty || self.mid_line {
            return;
        }
        let text = self.status.line(now_ms());
        // A terminal that does not say its width (0 columns) gets a wide line.
        let width = crossterm::terminal::size()
            .ok()
            .map(|(columns, _)| usize::from(columns))
            .filter(|columns| *columns > 0)
            .unwrap_or(160);
        let text = fit(&text, width.saturating_sub(1).max(10));
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[2K{}", self.colour.paint(Paint::Cyan, &text));
        let _ = stderr.flush();
        self.drawn = true;
    }

    fn erase(&mut self) {
        if self.drawn {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r\x1b[2K");
            let _ = stderr.flush();
            self.drawn = false;
        }
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.erase();
    }
}

/// `text` cut to `width` characters, so that the line never wraps (a wrapped line could not be
/// redrawn in place).
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}
