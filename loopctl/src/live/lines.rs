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
                let mut part = format!("⏸ {}", wait_label(waiting.code));
                if let Some(until) = waiting.until_ms {
                    part.push_str(&format!(
                        " until {} ({} left)",
                        clock(until, now_ms),
                        duration((until - now_ms).max(0) as u64)
                    ));
                }
                parts.push(part);
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
        // The answer stands, but the agent's exit status is not hidden.
        (StepStatus::Succeeded, Some(code), message) => {
            text.push_str(&format!(" · the agent exited {code} after its answer"));
            if let Some(message) = message {
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

/// `⏸ usage limit until 12:30 (2h 4m left): <reason>`: one line for every kind of wait.
pub fn wait_line(waiting: &Waiting, now_ms: i64) -> Line {
    let mut text = format!("⏸ {}", wait_label(waiting.code));
    if let Some(until) = waiting.until_ms {
        text.push_str(&format!(
            " until {} ({} left)",
            clock(until, now_ms),
            duration((until - now_ms).max(0) as u64)
        ));
    }
    text.push_str(&format!(": {}", first_line(&waiting.reason)));
    Line::new(Paint::Yellow, text)
}

/// A time as the local clock shows it: `14:05` today, `Tue 9 Dec 14:05` on another day.
pub fn clock(at_ms: i64, now_ms: i64) -> String {
    let zone = jiff::tz::TimeZone::system();
    let (Ok(at), Ok(now)) = (
        jiff::Timestamp::from_millisecond(at_ms),
        jiff::Timestamp::from_millisecond(now_ms),
    ) else {
        return loop_core::time::rfc3339_ms(at_ms);
    };
    let (at, now) = (
        at.to_zoned_datetime(zone.clone()),
        now.to_zoned_datetime(zone),
    );
    if at.date() == now.date() {
        at.strftime("%H:%M %Z").to_string()
    } else {
        at.strftime("%a %-d %b %H:%M %Z").to_string()
    }
}

fn first_line(text: &str) -> String {
    crate::render::one_line(text, 240)
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
mod tests {
    use loop_core::event::{RetryCount, StepStarted};
    use loop_core::{RunId, Seq, StepId, Version};

    use super::*;

    fn status() -> Status {
        Status {
            name: "swift-owl".to_owned(),
            status: RunStatus::Running,
            created_ms: 0,
            step: None,
            tasks_done: 0,
            tasks_total: 4,
            tokens: Tokens::default(),
            cost_usd: 0.0,
            waiting: None,
            backoff: None,
            pause_requested: false,
            merge_target: Some("main".to_owned()),
        }
    }

    fn record(ts_ms: i64, event: impl Into<Event>) -> EventRecord {
        EventRecord {
            seq: Seq(1),
            run_id: RunId::from_parts(1, [1; 10]),
            version: Version(2),
            ts_ms,
            schema: 1,
            event: event.into(),
        }
    }

    fn step() -> StepId {
        StepId::from_parts(1, [2; 10])
    }

    #[test]
    fn a_completion_claim_claims_no_verdict_of_the_verification_after_it() {
        let claim = loop_core::event::CompletionDetected {
            iteration: 5,
            commit: Some("3d0af8766e0000000000000000000000000000ff".to_owned()),
        };
        let line = status().apply(&record(10, claim), 10).expect("a line");
        assert_eq!(line.text, "── completion claimed at 3d0af8766e");
    }

    #[test]
    fn a_retry_says_which_of_how_many_when_and_why() {
        let mut status = status();
        let line = status
            .apply(
                &record(
                    10_000,
                    AgentRetry {
                        step_id: step(),
                        attempt: 4,
                        delay_ms: 60_000,
                        reason: "overloaded: API Error: Repeated 529 Overloaded errors".to_owned(),
                        count: Some(RetryCount { n: 3, of: 8 }),
                        paid: Default::default(),
                        account: None,
                        limited_until_ms: None,
                        window: None,
                        next_account: None,
                        budget: Some(loop_core::event::RetryBudget::Transient),
                    },
                ),
                10_000,
            )
            .expect("a line");
        assert_eq!(
            line.text,
            "↻ retry 3/8 in 1m: overloaded: API Error: Repeated 529 Overloaded errors"
        );
        assert!(
            status
                .line(40_000)
                .starts_with("↻ retry 3/8 in 30.0s · run 40.0s")
        );
    }

    #[test]
    fn a_usage_limit_wait_shows_its_reset_in_the_status_line() {
        let mut status = status();
        let until = 3 * 3_600_000;
        let line = status
            .apply(
                &record(
                    1_000,
                    AgentWaiting {
                        step_id: Some(step()),
                        until_ms: until,
                        reason: "usage limit: You've hit your session limit · resets 3am (UTC)"
                            .to_owned(),
                        paid: Default::default(),
                        account: None,
                        window: None,
                        pool_wait: None,
                    },
                ),
                1_000,
            )
            .expect("a line");
        assert!(
            line.text.starts_with("⏸ usage limit until "),
            "{}",
            line.text
        );
        assert!(
            line.text.contains("left): usage limit: You've hit"),
            "{}",
            line.text
        );
        let bottom = status.line(3_600_000);
        assert!(bottom.starts_with("⏸ usage limit until "), "{bottom}");
        assert!(bottom.contains("(2h left) · run 1h"), "{bottom}");
    }

    #[test]
    fn a_step_that_succeeded_with_a_bad_exit_says_so() {
        let mut status = status();
        status.apply(
            &record(
                0,
                StepStarted {
                    step_id: step(),
                    phase: Phase::Implementation,
                    iteration: 1,
                    attempt: 1,
                    prompt_path: None,
                    session_id: None,
                    resumed: false,
                    account: None,
                },
            ),
            0,
        );
        let finished: StepFinished = serde_json::from_value(serde_json::json!({
            "step_id": step(), "phase": "implementation", "status": "SUCCEEDED",
            "exit_code": 1, "duration_ms": 4000, "tasks_done": 1, "tasks_total": 4,
            "cost_usd": 0.6, "tokens": {"input": 1000, "output": 200},
            "message": "the agent exited with status 1 after its answer"
        }))
        .expect("a payload");
        let line = status
            .apply(&record(4_000, finished), 4_000)
            .expect("a line");
        assert_eq!(
            line.text,
            "✓ implementation succeeded in 4.0s · 1/4 tasks · $0.60 · the agent exited 1 after \
             its answer: the agent exited with status 1 after its answer"
        );
        assert_eq!(
            status.line(5_000),
            "between steps · run 5.0s · 1.2k tokens · $0.60 · 1/4 tasks"
        );
    }

    #[test]
    fn a_merge_that_did_not_land_says_what_to_run() {
        let mut status = status();
        let line = status
            .apply(
                &record(
                    0,
                    MergeFinished {
                        strategy: "squash".to_owned(),
                        commit: None,
                        conflict: Some("target_dirty: main has changes".to_owned()),
                    },
                ),
                0,
            )
            .expect("a line");
        assert_eq!(
            line.text,
            "✗ the merge into main did not land: target_dirty: main has changes; `loopctl merge \
             swift-owl` tries again"
        );
    }

    #[test]
    fn every_wait_the_view_reports_gets_one_line() {
        let mut status = status();
        let mut view_wait = |code, reason: &str| {
            let waiting = Waiting::new(code, reason.to_owned());
            let mut view: RunView = serde_json::from_value(serde_json::json!({
                "id": RunId::from_parts(1, [1; 10]), "name": "swift-owl", "name_source": "haiku",
                "status": "RUNNING", "workspace_root": "/w", "spec_path": "s", "plan_path": "p",
                "created_at": "", "updated_at": "", "created_ms": 0, "updated_ms": 0,
                "worktree": {"base_branch": null, "run_branch": null,
                    "merge_target_branch": null, "merge_strategy": "squash",
                    "worktree_path": null, "provider": null, "removed": false},
                "iteration": 1, "tasks_done": 0, "tasks_total": 4, "current_step": null,
                "exit_reason": null, "failure_reason": null, "cost_usd": 0.0,
                "postmortem": null, "last_seq": 1, "version": 1
            }))
            .expect("a view");
            view.waiting = Some(waiting);
            status.view(&view, 0)
        };
        let held = view_wait(WaitCode::AccountLimit, "account team is held (usage limit)");
        assert_eq!(
            held.expect("a line").text,
            "⏸ account hold: account team is held (usage limit)"
        );
        assert_eq!(
            view_wait(WaitCode::AccountLimit, "account team is held (usage limit)"),
            None,
            "the same wait is said once"
        );
        assert!(view_wait(WaitCode::AccountTurn, "its turn").is_some());
    }
}
