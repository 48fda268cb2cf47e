//! Probes: one event of every type aimed at a run as it stands, and which of them a finished
//! run still takes, for the laws that try every event after every history.

use super::*;

/// Whether a run that ended in `status` takes an event of `event_type` next: only what a
/// person or the postmortem does afterwards, and a retry of a FAILED run.
pub(super) fn accepted_after_the_end(
    status: RunStatus,
    postmortem_running: bool,
    has_worktree: bool,
    event_type: EventType,
) -> bool {
    match event_type {
        EventType::ArtifactWritten
        | EventType::WorktreeRemoved
        | EventType::ReviewAction
        | EventType::ReviewComment => true,
        EventType::ChangesRequested => !postmortem_running && has_worktree,
        EventType::RunRetried => {
            matches!(status, RunStatus::Failed | RunStatus::Canceled) && !postmortem_running
        }
        EventType::PostmortemStart => !postmortem_running,
        EventType::PostmortemEnd => postmortem_running,
        _ => false,
    }
}

/// `event` as the record that would follow `previous` on a run in `state`.
pub(super) fn record_after(state: &RunState, previous: &EventRecord, event: Event) -> EventRecord {
    EventRecord {
        seq: loop_core::Seq(previous.seq.0 + 1),
        version: state.version().next(),
        ts_ms: previous.ts_ms + 1,
        event,
        ..previous.clone()
    }
}

/// At least one event of every type, aimed at the run's steps where an event names one.
pub(super) fn probes(driver: &Driver) -> Vec<Event> {
    let mut steps: Vec<StepId> = driver.started.clone();
    steps.push(StepId::from_parts(generate::T0 as u64, [0xee; 10]));
    let fresh = *steps.last().expect("just pushed");
    let mut probes: Vec<Event> = vec![
        RunCreated {
            name: "again".into(),
            name_source: Default::default(),
            workspace_root: "/work/again".into(),
            spec_path: "spec.md".into(),
            plan_path: "plan.md".into(),
            config: BTreeMap::new(),
            prompt_template: Default::default(),
            tasks_done: None,
            tasks_total: None,
        }
        .into(),
        RunNamed {
            name: "quiet-harbor".into(),
            name_source: NameSource::Haiku,
            paid: Default::default(),
        }
        .into(),
        RunClaimed {
            node_id: "node-a".into(),
            lease_ms: 15_000,
            took_over_from: Some("node-b".into()),
        }
        .into(),
        RunStarted {}.into(),
        RunPaused { reason: None }.into(),
        RunPauseRequested {}.into(),
        RunResumed {}.into(),
        RunCanceled { reason: None }.into(),
        RunRetried {}.into(),
        RunCompleted {
            exit_reason: ExitReason::CompletePlan,
            completed_iteration: 1,
        }
        .into(),
        RunFailed {
            exit_reason: ExitReason::Failed,
            reason: "probe".into(),
            cause: None,
        }
        .into(),
        WorktreeProviderSelected {
            provider: "git".into(),
        }
        .into(),
        WorktreeCreated {
            provider: "git".into(),
            path: "/tmp/wt".into(),
            base_branch: "main".into(),
            run_branch: "loop/probe".into(),
            reused: false,
        }
        .into(),
        WorktreeRemoved {
            path: "/tmp/wt".into(),
        }
        .into(),
        StepStarted {
            step_id: fresh,
            phase: Phase::Implementation,
            iteration: 1,
            attempt: 1,
            prompt_path: None,
            session_id: Default::default(),
            resumed: Default::default(),
            account: None,
        }
        .into(),
        AgentWaiting {
            step_id: None,
            until_ms: generate::T0,
            reason: "probe".into(),
            paid: Default::default(),
            account: None,
            window: None,
            pool_wait: None,
        }
        .into(),
        CompletionDetected {
            iteration: 1,
            commit: None,
        }
        .into(),
        CompletionRejected {
            iteration: 1,
            reason: "probe".into(),
        }
        .into(),
        WatchdogSignal {
            iteration: 1,
            signal: "stalled".into(),
            detail: String::new(),
        }
        .into(),
        WatchdogRewrite {
            signal: "stalled".into(),
            prompt_before: "a".into(),
            prompt_after: "b".into(),
        }
        .into(),
        MergeFinished {
            strategy: "squash".into(),
            commit: Some("abc".into()),
            conflict: None,
        }
        .into(),
        ArtifactWritten {
            kind: "report".into(),
            path: "report.tsv".into(),
            location: ArtifactLocation::Workspace,
            sha256: "0".repeat(64),
            bytes: 1,
        }
        .into(),
        PostmortemStart {
            reason: "probe".into(),
        }
        .into(),
        PostmortemEnd {
            status: PostmortemStatus::Ok,
            reason: None,
            paid: Default::default(),
        }
        .into(),
        ReviewAction {
            action: "diff".into(),
            detail: BTreeMap::new(),
        }
        .into(),
        loop_core::event::ExperimentDecided {
            iteration: 1,
            decision: loop_core::event::Decision::Discarded,
            reason: loop_core::event::Reason::NoChange,
            commit: None,
            best_commit: "b".repeat(40),
            idea: None,
            metric: None,
            best_metric: None,
            effect: None,
            interval: None,
            kept_ref: None,
        }
        .into(),
        ReviewComment {
            path: "src/lib.rs".into(),
            line: 3,
            body: "probe".into(),
            side: Default::default(),
        }
        .into(),
        ChangesRequested {
            comments: Vec::new(),
            body: Some("probe".into()),
        }
        .into(),
    ];
    for step_id in steps {
        probes.push(
            StepFinished {
                exit_code: Some(0),
                duration_ms: 1,
                ..generate::finished_payload(step_id, Phase::Implementation, StepStatus::Succeeded)
            }
            .into(),
        );
        probes.push(
            AgentRetry {
                step_id,
                attempt: 2,
                delay_ms: 10,
                reason: "probe".into(),
                count: None,
                paid: Default::default(),
                account: None,
                limited_until_ms: None,
                window: None,
                next_account: None,
                budget: None,
            }
            .into(),
        );
        probes.push(
            MergeStarted {
                step_id,
                target: "main".into(),
                strategy: "squash".into(),
                onto: None,
                commit: "abc".into(),
            }
            .into(),
        );
        probes.push(
            VerificationCommand {
                step_id,
                command: "true".into(),
                exit_code: Some(0),
                duration_ms: 1,
            }
            .into(),
        );
        let samples = loop_core::experiment::samples(&"c".repeat(40), vec![1.0, 1.1]);
        probes.push(
            loop_core::event::ExperimentBaseline {
                step_id,
                iteration: 0,
                metric: "seconds".into(),
                baseline: samples.clone(),
                drift: None,
            }
            .into(),
        );
        probes.push(
            loop_core::event::ExperimentMeasured {
                step_id,
                iteration: 1,
                metric: "seconds".into(),
                candidate: samples.clone(),
                best: samples,
            }
            .into(),
        );
    }
    probes
}

#[test]
fn probes_cover_every_event_type() {
    let driver = Driver::new(generate::run_id());
    let covered: BTreeSet<EventType> = probes(&driver).iter().map(Event::event_type).collect();
    let all: BTreeSet<EventType> = EventType::ALL.iter().copied().collect();
    assert_eq!(covered, all);
}
