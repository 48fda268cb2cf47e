//! What a live view says, as text: a line for each event a person following a run wants to
//! see (a step starting and ending, a retry, a wait, a rewrite, a rejected claim, a merge, the
//! end), the line for a wait the run view reports (an account hold, the queue), and the status
//! line, all from [`Status`], the run as its events fold. Pure: the time comes in as `now_ms`.

use loop_core::event::{
    AgentRetry, AgentWaiting, Event, FailureCause, MergeFinished, Phase, StepFinished, StepStatus,
    Tokens,
};
use loop_core::projection::{RunView, StepView, WaitCode, Waiting};
use loop_core::{EventRecord, RunStatus};

use crate::human::{duration, money, tokens};
use crate::table::Paint;

/// One line to print, and how to paint it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub paint: Paint,
    pub text: String,
}

impl Line {
    fn new(paint: Paint, text: String) -> Line {
        Line { paint, text }
    }
}

/// The step running now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepNow {
    pub phase: Phase,
    pub iteration: u32,
    pub attempt: u32,
    pub started_ms: i64,
}

/// A retry the run is backing off for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub until_ms: i64,
    /// `retry 3/8`.
    pub what: String,
}

/// The run as a live view shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub name: String,
    pub status: RunStatus,
    pub created_ms: i64,
    pub step: Option<StepNow>,
    pub tasks_done: u32,
    pub tasks_total: u32,
    /// Tokens of the calls recorded so far.
    pub tokens: Tokens,
    pub cost_usd: f64,
    pub waiting: Option<Waiting>,
    pub backoff: Option<Backoff>,
    pub pause_requested: bool,
    pub merge_target: Option<String>,
}

impl Status {
    /// The run as `view` and its `steps` show it now.
    pub fn of(view: &RunView, steps: &[StepView]) -> Status {
        let step = view.current_step.as_ref().map(|current| StepNow {
            phase: current.phase,
            iteration: current.iteration,
            attempt: current.attempt,
            started_ms: steps
                .iter()
                .find(|s| s.id == current.id)
                .map_or(view.updated_ms, |s| s.started_ms),
        });
        Status {
            name: view.name.clone(),
            status: view.status,
            created_ms: view.created_ms,
            step,
            tasks_done: view.tasks_done,
            tasks_total: view.tasks_total,
            tokens: steps
                .iter()
                .filter_map(|s| s.tokens)
                .fold(Tokens::default(), Tokens::plus),
            cost_usd: view.cost_usd,
            waiting: view.waiting.clone(),
            backoff: None,
            pause_requested: view.pause_requested,
            merge_target: view.worktree.merge_target_branch.clone(),
        }
    }

    /// Takes the run's next event; the line it deserves, if any.
    pub fn apply(&mut self, record: &EventRecord, now_ms: i64) -> Option<Line> {
        if let Some(paid) = record.event.paid() {
            if let Some(cost) = paid.cost_usd {
                self.cost_usd = loop_core::projection::add_cost(self.cost_usd, cost);
            }
            if let Some(used) = paid.tokens {
                self.tokens = self.tokens.plus(used);
            }
        }
        if !matches!(
            record.event,
            Event::ArtifactWritten(_) | Event::RunClaimed(_) | Event::RunPauseRequested(_)
        ) {
            self.waiting = None;
        }
        let name = self.name.clone();
        let line = match &record.event {
            Event::RunNamed(named) => {
                self.name.clone_from(&named.name);
                Line::new(
                    Paint::Dim,
                    format!("── named {}; `{name}` still finds it", named.name),
                )
            }
            Event::RunStarted(_) => {
                self.status = RunStatus::Running;
                return None;
            }
            Event::RunResumed(_) => {
                self.status = RunStatus::Running;
                Line::new(Paint::Dim, "── resumed".to_owned())
            }
            Event::RunPauseRequested(_) => {
                self.pause_requested = true;
                Line::new(
                    Paint::Yellow,
                    format!(
                        "── pause asked for: the run pauses once this step ends \
                         (`loopctl pause {name} --now` stops it now)"
                    ),
                )
            }
            Event::RunPaused(_) => {
                self.status = RunStatus::Paused;
                self.pause_requested = false;
                self.step = None;
                Line::new(
                    Paint::Yellow,
                    format!("⏸ paused; `loopctl resume {name}` goes on from here"),
                )
            }
            Event::RunRetried(_) => {
                self.status = RunStatus::Pending;
                Line::new(Paint::Dim, "── retried: the run starts again".to_owned())
            }
            Event::ChangesRequested(asked) => {
                self.status = RunStatus::Pending;
                let comments = match asked.comments.len() {
                    1 => "1 comment".to_owned(),
                    n => format!("{n} comments"),
                };
                Line::new(
                    Paint::Yellow,
                    format!("── changes requested ({comments}): the run goes back to work"),
                )
            }
            Event::ExperimentDecided(decided) => Line::new(
                Paint::Dim,
                format!(
                    "── experiment, iteration {}: {} ({}){}",
                    decided.iteration,
                    decided.decision.as_str(),
                    decided.reason.words(),
                    decided
                        .idea
                        .as_deref()
                        .map(|idea| format!(": {}", first_line(idea)))
                        .unwrap_or_default()
                ),
            ),
            Event::RunCanceled(_) => {
                self.status = RunStatus::Canceled;
                self.step = None;
                Line::new(Paint::Red, "✗ canceled".to_owned())
            }
            Event::RunCompleted(completed) => {
                self.status = RunStatus::Completed;
                self.step = None;
                Line::new(
                    Paint::Green,
                    format!("✓ completed ({})", completed.exit_reason.as_str()),
                )
            }
            Event::RunFailed(failed) => {
                self.status = RunStatus::Failed;
                self.step = None;
                let text = match &failed.cause {
                    Some(FailureCause::Budget { cost_usd, max_usd }) => format!(
                        "✗ budget stop: {} spent, the cap is {}: {}",
                        money(*cost_usd),
                        money(*max_usd),
                        first_line(&failed.reason)
                    ),
                    _ => format!("✗ failed: {}", first_line(&failed.reason)),
                };
                Line::new(Paint::Red, text)
            }
            Event::WorktreeCreated(w) if !w.provider.has_worktree() => Line::new(
                Paint::Dim,
                format!("── no worktree: the run works in {} itself", w.path),
            ),
            Event::WorktreeCreated(w) => Line::new(
                Paint::Dim,
                format!("── worktree {} on branch {}", w.path, w.run_branch),
            ),
            Event::StepStarted(step) => {
                self.backoff = None;
                self.step = Some(StepNow {
                    phase: step.phase,
                    iteration: step.iteration,
                    attempt: step.attempt,
                    started_ms: record.ts_ms,
                });
                let mut text = format!(
                    "── {} · iteration {} · attempt {} · {} elapsed",
                    step.phase.as_str(),
                    step.iteration,
                    step.attempt,
                    duration((record.ts_ms - self.created_ms).max(0) as u64)
                );
                if self.tasks_total > 0 {
                    text.push_str(&format!(
                        " · {}/{} tasks",
                        self.tasks_done, self.tasks_total
                    ));
                }
                if step.resumed {
                    text.push_str(" · the agent's session goes on");
                }
                Line::new(Paint::Dim, text)
            }
            Event::StepFinished(step) => {
                self.step = None;
                self.backoff = None;
                if let Some(done) = step.tasks_done {
                    self.tasks_done = done;
                }
                if let Some(total) = step.tasks_total {
                    self.tasks_total = total;
                }
                step_finished(step)
            }
            Event::AgentRetry(retry) => {
                let what = retry_what(retry);
                self.backoff = Some(Backoff {
                    until_ms: record.ts_ms + i64::try_from(retry.delay_ms).unwrap_or(i64::MAX),
                    what: what.clone(),
                });
                let when = if retry.delay_ms == 0 {
                    "now".to_owned()
                } else {
                    format!("in {}", duration(retry.delay_ms))
                };
                let account = match (&retry.next_account, &retry.limited_until_ms) {
                    (Some(next), Some(until)) => format!(
                        " on account {next} (account {} is held until {})",
                        retry.account.as_deref().unwrap_or("?"),
                        clock(*until, now_ms)
                    ),
                    (Some(next), None) => format!(" on account {next}"),
                    _ => String::new(),
                };
                Line::new(
                    Paint::Yellow,
                    format!("↻ {what} {when}{account}: {}", first_line(&retry.reason)),
                )
            }
            Event::AgentWaiting(wait) => {
                let waiting = waiting_of(wait);
                let line = wait_line(&waiting, now_ms);
                self.waiting = Some(waiting);
                line
            }
            Event::VerificationCommand(c) => {
                let ok = c.exit_code == Some(0);
                Line::new(
                    if ok { Paint::Dim } else { Paint::Red },
                    format!(
                        "   {} `{}` exit {} in {}",
                        if ok { "✓" } else { "✗" },
                        c.command,
                        c.exit_code
                            .map_or_else(|| "none".to_owned(), |code| code.to_string()),
                        duration(c.duration_ms)
                    ),
                )
            }
            Event::CompletionDetected(done) => Line::new(
                Paint::Green,
                match &done.commit {
                    // The claim is recorded before the verification that judges it (whose
                    // own line follows): it names the commit, not a verdict.
                    Some(commit) => format!("── completion claimed at {}", short(commit)),
                    None => "── completion claimed".to_owned(),
                },
            ),
            Event::CompletionRejected(rejected) => Line::new(
                Paint::Yellow,
                format!(
                    "✗ completion rejected: {}; the loop goes on",
                    first_line(&rejected.reason)
                ),
            ),
            Event::WatchdogRewrite(rewrite) => Line::new(
                Paint::Yellow,
                format!(
                    "⚠ watchdog ({}): the prompt is rewritten for the next iterations ({})",
                    rewrite.signal,
                    file_name(&rewrite.prompt_after)
                ),
            ),
            Event::MergeFinished(merge) => self.merge_line(merge),
            Event::PostmortemStart(start) => {
                Line::new(Paint::Dim, format!("── postmortem: {}", start.reason))
            }
            Event::PostmortemEnd(end) => Line::new(
                Paint::Dim,
                format!(
                    "── postmortem {}{}",
                    end.status.as_str(),
                    end.reason
                        .as_deref()
                        .map(|r| format!(": {}", first_line(r)))
                        .unwrap_or_default()
                ),
            ),
            Event::RunCreated(_)
            | Event::RunClaimed(_)
            | Event::WorktreeProviderSelected(_)
            | Event::WorktreeRemoved(_)
            | Event::WatchdogSignal(_)
            | Event::ArtifactWritten(_)
            | Event::ReviewAction(_)
            | Event::ReviewComment(_)
            | Event::ExperimentBaseline(_)
            | Event::ExperimentMeasured(_)
            // The merge step's own line says a merge began; its outcome is MERGE_FINISHED's.
            | Event::MergeStarted(_) => return None,
        };
        Some(line)
    }

    /// Takes what the run view says now that events do not: a wait of the account or the queue.
    /// The line for a wait that is new, if any.
    pub fn view(&mut self, view: &RunView, now_ms: i64) -> Option<Line> {
        self.pause_requested = view.pause_requested;
        let new = match (&self.waiting, &view.waiting) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(old), Some(new)) => old.code != new.code || old.reason != new.reason,
        };
        self.waiting.clone_from(&view.waiting);
        if !new {
            return None;
        }
        self.waiting
            .as_ref()
            .map(|waiting| wait_line(waiting, now_ms))
    }

    /// The line that stays at the bottom of a terminal: what runs, for how long, what it cost.
    pub fn line(&self, now_ms: i64) -> String {
        let mut parts: Vec<String> = Vec::new();
        match (&self.waiting, &self.backoff, &self.step) {
            (Some(waiting), _, _) => {
                parts.push(format!(
                    "⏸ {}{}",
                    wait_label(waiting.code),
                    until(waiting, now_ms)
                ));
            }
            (None, Some(backoff), _) if backoff.until_ms > now_ms => parts.push(format!(
                "↻ {} in {}",
                backoff.what,
                duration((backoff.until_ms - now_ms) as u64)
            )),
            (None, _, Some(step)) => parts.push(format!(
                "{} · iteration {} · attempt {} · {}",
                step.phase.as_str(),
                step.iteration,
                step.attempt,
                duration((now_ms - step.started_ms).max(0) as u64)
            )),
            (None, _, None) if self.status == RunStatus::Running => {
                parts.push("between steps".to_owned());
            }
            (None, _, None) => parts.push(self.status.as_str().to_owned()),
        }
        parts.push(format!(
            "run {}",
            duration((now_ms - self.created_ms).max(0) as u64)
        ));
        let used = self.tokens.input + self.tokens.output;
        if used > 0 {
            parts.push(format!("{} tokens", tokens(used)));
        }
        parts.push(money(self.cost_usd));
        if self.tasks_total > 0 {
            parts.push(format!("{}/{} tasks", self.tasks_done, self.tasks_total));
        }
        if self.pause_requested {
            parts.push("pausing after this step".to_owned());
        }
        parts.join(" · ")
    }

    fn merge_line(&self, merge: &MergeFinished) -> Line {
        let target = self.merge_target.as_deref().unwrap_or("its target");
        match (&merge.commit, &merge.conflict) {
            (Some(commit), _) => Line::new(
                Paint::Green,
                format!(
                    "✓ merged into {target} ({}) as {}",
                    merge.strategy,
                    short(commit)
                ),
            ),
            (None, problem) => Line::new(
                Paint::Red,
                format!(
                    "✗ the merge into {target} did not land: {}; `loopctl merge {}` tries again",
                    first_line(problem.as_deref().unwrap_or("no reason given")),
                    self.name
                ),
            ),
        }
    }
}

fn step_finished(step: &StepFinished) -> Line {
    let mut text = format!(
        "{} {} {} in {}",
        if step.status == StepStatus::Succeeded {
            "✓"
        } else {
            "✗"
        },
        step.phase.as_str(),
        step.status.as_str().to_lowercase(),
        duration(step.duration_ms)
    );
    if let (Some(done), Some(total)) = (step.tasks_done, step.tasks_total) {
        text.push_str(&format!(" · {done}/{total} tasks"));
    }
    if let Some(cost) = step.cost_usd {
        text.push_str(&format!(" · {}", money(cost)));
    }
    let odd_exit = step.exit_code.filter(|code| *code != 0);
    match (step.status, odd_exit, &step.message) {
        // The answer stands, but the agent's exit status is not hidden. The runtime's own note
        // on it says the same again; any other message is shown.
        (StepStatus::Succeeded, Some(code), message) => {
            text.push_str(&format!(
                " · the agent exited {code} after its answer (the answer is kept)"
            ));
            if let Some(message) = message
                .as_deref()
                .filter(|m| !m.contains("after its answer"))
            {
                text.push_str(&format!(": {}", first_line(message)));
            }
            Line::new(Paint::Yellow, text)
        }
        (StepStatus::Succeeded, None, message) => {
            if let Some(message) = message {
                text.push_str(&format!(": {}", first_line(message)));
            }
            Line::new(Paint::Green, text)
        }
        (status, code, message) => {
            if let Some(code) = code {
                text.push_str(&format!(" · exit {code}"));
            }
            if let Some(message) = message {
                text.push_str(&format!(": {}", first_line(message)));
            }
            let paint = if status == StepStatus::Failed {
                Paint::Red
            } else {
                Paint::Yellow
            };
            Line::new(paint, text)
        }
    }
}

/// `retry 3/8`, or `retry` when the retry is charged to no budget.
fn retry_what(retry: &AgentRetry) -> String {
    match retry.count {
        Some(count) => format!("retry {}/{}", count.n, count.of),
        None => "retry".to_owned(),
    }
}

fn waiting_of(wait: &AgentWaiting) -> Waiting {
    Waiting::new(loop_core::projection::wait_code(wait), wait.reason.clone()).until(wait.until_ms)
}

/// What a person calls each wait.
pub fn wait_label(code: WaitCode) -> &'static str {
    match code {
        WaitCode::UsageLimit => "usage limit",
        WaitCode::AccountBudget => "account budget",
        WaitCode::AccountLimit => "account hold",
        WaitCode::AccountReserve => "account reserve",
        WaitCode::AccountProbe => "account probe",
        WaitCode::AccountTurn => "account turn",
        WaitCode::WaitingForSlot => "waiting for a slot",
        WaitCode::WorkspaceBusy => "workspace busy",
        WaitCode::Queued => "queued",
        WaitCode::StoreUnavailable => "event log refuses writes",
        WaitCode::StorageFull => "disk full",
        WaitCode::Unknown => "waiting",
    }
}

/// `⏸ usage limit until 12:31:00 JST (2h 4m left): <reason>`: one line for every kind of wait.
pub fn wait_line(waiting: &Waiting, now_ms: i64) -> Line {
    let text = format!(
        "⏸ {}{}: {}",
        wait_label(waiting.code),
        until(waiting, now_ms),
        first_line(&waiting.reason)
    );
    Line::new(Paint::Yellow, text)
}

/// ` until 12:31:00 JST (2h 4m left)`, or nothing for a wait with no end known: when the run
/// goes on, as every view of a wait says it (the wait's line, the status line, `inspect`,
/// `list`). The time is the wait's own `until_ms` to the second, the very instant the reason's
/// "trying again at" names: a usage limit's reset plus its margin is not rounded to a minute
/// that reads as earlier or later than the reset the agent quoted.
pub fn until(waiting: &Waiting, now_ms: i64) -> String {
    until_in(waiting, now_ms, &jiff::tz::TimeZone::system())
}

fn until_in(waiting: &Waiting, now_ms: i64, zone: &jiff::tz::TimeZone) -> String {
    waiting.until_ms.map_or_else(String::new, |until| {
        format!(
            " until {} ({} left)",
            clock_in(until, now_ms, zone),
            duration((until - now_ms).max(0) as u64)
        )
    })
}

/// A time as the local clock shows it, to the second: `14:05:30 CET` today, `Tue 9 Dec
/// 14:05:30 CET` on another day.
pub fn clock(at_ms: i64, now_ms: i64) -> String {
    clock_in(at_ms, now_ms, &jiff::tz::TimeZone::system())
}

fn clock_in(at_ms: i64, now_ms: i64, zone: &jiff::tz::TimeZone) -> String {
    let (Ok(at), Ok(now)) = (
        jiff::Timestamp::from_millisecond(at_ms),
        jiff::Timestamp::from_millisecond(now_ms),
    ) else {
        return loop_core::time::rfc3339_ms(at_ms);
    };
    let (at, now) = (
        at.to_zoned_datetime(zone.clone()),
        now.to_zoned_datetime(zone.clone()),
    );
    if at.date() == now.date() {
        at.strftime("%H:%M:%S %Z").to_string()
    } else {
        at.strftime("%a %-d %b %H:%M:%S %Z").to_string()
    }
}

fn first_line(text: &str) -> String {
    crate::human::one_line(text, 240)
}

fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

fn file_name(path: &str) -> &str {
    std::path::Path::new(path)
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or(path)
}

#[cfg(test)]
mod tests;
