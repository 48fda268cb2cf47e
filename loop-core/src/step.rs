//! The `STEP_FINISHED` of a step: one function builds it from what the runtime observed, for
//! every phase and for steps closed by a pause, a cancel or a crash.

use crate::event::{AgentDetail, Phase, StepFinished, StepStatus, Tokens};
use crate::ids::StepId;
use crate::plan::Plan;

/// A step's text output, as written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutputFile {
    pub path: String,
    pub bytes: u64,
    pub lines: u64,
}

/// What the runtime saw of the working tree and the step's output when the step ended.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    pub duration_ms: u64,
    pub output: Option<OutputFile>,
    /// The plan's tasks (done, total), when the plan could be read.
    pub tasks: Option<(u32, u32)>,
    /// SHA-256 of the plan file (kept for implementation steps: the watchdog's evidence).
    pub plan_sha256: Option<String>,
    /// `HEAD` of the working tree.
    pub head_commit: Option<String>,
}

impl Observation {
    /// The plan's counts, from the plan as read.
    pub fn with_plan(mut self, plan: Option<&Plan>) -> Observation {
        self.tasks = plan.map(|plan| (plan.tasks_done(), plan.tasks_total()));
        self
    }
}

/// What an agent call reported of itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallReport {
    pub exit_code: Option<i32>,
    pub tokens: Option<Tokens>,
    pub cost_usd: Option<f64>,
    /// Digest of the normalized answer (implementation steps: the watchdog's evidence).
    pub answer_sha256: Option<String>,
    /// Session, models, turns and rate-limit window, as the agent reported them.
    pub agent: Option<AgentDetail>,
    /// The account that served the call, and whether its cost is an estimate.
    pub account: Option<String>,
    pub cost_estimated: bool,
}

/// The `STEP_FINISHED` of step `step_id`.
pub fn finished(
    step_id: StepId,
    phase: Phase,
    status: StepStatus,
    message: Option<String>,
    observation: &Observation,
    call: Option<&CallReport>,
) -> StepFinished {
    let output = observation.output.as_ref();
    StepFinished {
        step_id,
        phase,
        status,
        exit_code: call.and_then(|c| c.exit_code),
        duration_ms: observation.duration_ms,
        output_path: output.map(|o| o.path.clone()),
        output_bytes: output.map_or(0, |o| o.bytes),
        output_lines: output.map_or(0, |o| o.lines),
        tokens: call.and_then(|c| c.tokens),
        cost_usd: call.and_then(|c| c.cost_usd),
        tasks_done: observation.tasks.map(|(done, _)| done),
        tasks_total: observation.tasks.map(|(_, total)| total),
        message,
        head_commit: observation.head_commit.clone(),
        plan_sha256: observation.plan_sha256.clone(),
        answer_sha256: call.and_then(|c| c.answer_sha256.clone()),
        agent: call.and_then(|c| c.agent.clone()).map(Box::new),
        account: call.and_then(|c| c.account.clone()),
        cost_estimated: call.is_some_and(|c| c.cost_estimated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_closed_from_outside_carries_only_its_duration_and_why() {
        let step_id: StepId = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".parse().unwrap();
        let closed = finished(
            step_id,
            Phase::Review,
            StepStatus::Canceled,
            Some("step canceled".to_owned()),
            &Observation {
                duration_ms: 1500,
                ..Observation::default()
            },
            None,
        );
        assert_eq!(closed.duration_ms, 1500);
        assert_eq!(closed.output_path, None);
        assert_eq!((closed.tasks_done, closed.cost_usd), (None, None));
    }

    #[test]
    fn an_agent_step_carries_its_output_plan_and_figures() {
        let step_id: StepId = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".parse().unwrap();
        let plan = Plan::parse("- [x] one\n- [ ] two\n");
        let observation = Observation {
            duration_ms: 10,
            output: Some(OutputFile {
                path: "iter-01-impl.log".to_owned(),
                bytes: 5,
                lines: 1,
            }),
            head_commit: Some("abc".to_owned()),
            ..Observation::default()
        }
        .with_plan(Some(&plan));
        let call = CallReport {
            exit_code: Some(0),
            cost_usd: Some(0.5),
            ..CallReport::default()
        };
        let done = finished(
            step_id,
            Phase::Implementation,
            StepStatus::Succeeded,
            None,
            &observation,
            Some(&call),
        );
        assert_eq!((done.tasks_done, done.tasks_total), (Some(1), Some(2)));
        assert_eq!(done.output_bytes, 5);
        assert_eq!(done.cost_usd, Some(0.5));
        assert_eq!(done.exit_code, Some(0));
    }
}
