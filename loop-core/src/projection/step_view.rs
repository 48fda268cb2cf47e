//! The API's `Step`: one row per step, created by `STEP_STARTED` and kept current by the events
//! that name the step.

use serde::{Deserialize, Serialize};

use crate::event::{AgentDetail, Event, EventRecord, Paid, Phase, StepStatus, Tokens};
use crate::ids::{RunId, StepId};
use crate::projection::add_cost;
use crate::time::rfc3339_ms;

/// One step as the API shows it (`contract.md` §3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Step))]
pub struct StepView {
    pub id: StepId,
    pub run_id: RunId,
    pub phase: Phase,
    pub iteration: u32,
    pub attempt: u32,
    pub status: StepStatus,
    pub exit_code: Option<i32>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    pub duration_ms: Option<u64>,
    pub prompt_path: Option<String>,
    pub output_path: Option<String>,
    pub output_bytes: u64,
    pub output_lines: u64,
    /// Every call of the step, retried ones included.
    pub tokens: Option<Tokens>,
    /// Every call of the step, retried ones included.
    pub cost_usd: Option<f64>,
    pub message: Option<String>,
    /// Agent calls retried within this step.
    pub retries: u32,
    /// The agent session this step went on with, when an earlier attempt was interrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumes_session: Option<String>,
    /// Session, models, turns and rate-limit window the agent reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentDetail>,
    /// For a verification step: each command and how it ended.
    pub commands: Vec<CommandOutcome>,
}

/// One verification command of a step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommandOutcome {
    pub command: String,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
}

/// The step an event is about, for the events that change a step's row.
pub fn step_of(event: &Event) -> Option<StepId> {
    match event {
        Event::StepStarted(e) => Some(e.step_id),
        Event::StepFinished(e) => Some(e.step_id),
        Event::AgentRetry(e) => Some(e.step_id),
        Event::AgentWaiting(e) => e.step_id,
        Event::VerificationCommand(e) => Some(e.step_id),
        _ => None,
    }
}

impl StepView {
    /// The row a `STEP_STARTED` creates; `None` for any other event.
    pub fn started(record: &EventRecord) -> Option<StepView> {
        let Event::StepStarted(step) = &record.event else {
            return None;
        };
        Some(StepView {
            id: step.step_id,
            run_id: record.run_id,
            phase: step.phase,
            iteration: step.iteration,
            attempt: step.attempt,
            status: StepStatus::InProgress,
            exit_code: None,
            started_at: rfc3339_ms(record.ts_ms),
            finished_at: None,
            started_ms: record.ts_ms,
            finished_ms: None,
            duration_ms: None,
            prompt_path: step.prompt_path.clone(),
            output_path: None,
            output_bytes: 0,
            output_lines: 0,
            tokens: None,
            cost_usd: None,
            message: None,
            retries: 0,
            commands: Vec::new(),
            resumes_session: step.session_id.clone().filter(|_| step.resumed),
            agent: None,
        })
    }

    /// Applies an event about this step (see [`step_of`]); other events leave it unchanged.
    pub fn apply(&mut self, record: &EventRecord) {
        match &record.event {
            Event::StepFinished(done) if done.step_id == self.id => {
                self.status = done.status;
                self.exit_code = done.exit_code;
                self.finished_at = Some(rfc3339_ms(record.ts_ms));
                self.finished_ms = Some(record.ts_ms);
                self.duration_ms = Some(done.duration_ms);
                self.output_path.clone_from(&done.output_path);
                self.output_bytes = done.output_bytes;
                self.output_lines = done.output_lines;
                self.message.clone_from(&done.message);
                self.agent = done.agent.as_deref().cloned();
                self.add(record.event.paid());
            }
            Event::AgentRetry(retry) if retry.step_id == self.id => {
                self.retries += 1;
                self.add(Some(retry.paid));
            }
            Event::AgentWaiting(wait) if wait.step_id == Some(self.id) => {
                self.add(Some(wait.paid));
            }
            Event::VerificationCommand(command) if command.step_id == self.id => {
                self.commands.push(CommandOutcome {
                    command: command.command.clone(),
                    exit_code: command.exit_code,
                    duration_ms: command.duration_ms,
                });
            }
            _ => {}
        }
    }

    /// Adds a call's figures to the step's.
    fn add(&mut self, paid: Option<Paid>) {
        let Some(paid) = paid else { return };
        if let Some(cost) = paid.cost_usd {
            self.cost_usd = Some(add_cost(self.cost_usd.unwrap_or(0.0), cost));
        }
        if let Some(tokens) = paid.tokens {
            self.tokens = Some(self.tokens.unwrap_or_default().plus(tokens));
        }
    }

    /// Every step of a run, in the order they started.
    pub fn fold<'a>(records: impl IntoIterator<Item = &'a EventRecord>) -> Vec<StepView> {
        let mut steps: Vec<StepView> = Vec::new();
        for record in records {
            if let Some(step) = StepView::started(record) {
                steps.push(step);
            } else if let Some(id) = step_of(&record.event)
                && let Some(step) = steps.iter_mut().rev().find(|s| s.id == id)
            {
                step.apply(record);
            }
        }
        steps
    }
}
