//! Laws that hold for every history `decide` lets through: replay accepts it, projections can be
//! kept one event at a time, terminal states stay terminal, records survive JSON.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use loop_core::event::{
    AgentRetry, AgentWaiting, ArtifactLocation, ArtifactWritten, ChangesRequested,
    CompletionDetected, CompletionRejected, ExitReason, MergeFinished, MergeStarted, NameSource,
    Phase, PostmortemEnd, PostmortemStart, PostmortemStatus, ReviewAction, ReviewComment,
    RunCanceled, RunClaimed, RunCompleted, RunCreated, RunFailed, RunNamed, RunPauseRequested,
    RunPaused, RunResumed, RunRetried, RunStarted, StepFinished, StepStarted, StepStatus,
    VerificationCommand, WatchdogRewrite, WatchdogSignal, WorktreeCreated,
    WorktreeProviderSelected, WorktreeRemoved,
};
use loop_core::projection::{
    EXPERIMENTS_HEADER, ExperimentTable, REPORT_HEADER, Report, RunLog, RunView, StepView, Summary,
    events_jsonl,
};
use loop_core::{DomainError, Event, EventRecord, EventType, RunState, RunStatus, StepId, Version};
use proptest::prelude::*;
use proptest::sample::Index;

use crate::generate::{self, COMMAND_VARIANTS, Driver, command_name};

mod probes;

use probes::{accepted_after_the_end, probes, record_after};

/// 64 cases per law keeps the suite fast; `PROPTEST_CASES=5000` runs a deeper search.
fn config() -> ProptestConfig {
    if std::env::var_os("PROPTEST_CASES").is_some() {
        ProptestConfig::default()
    } else {
        ProptestConfig::with_cases(64)
    }
}

/// Where to cut a history in two.
fn split(records: &[EventRecord], at: &Index) -> usize {
    at.index(records.len() + 1)
}

/// Step rows kept one event at a time: a row per `STEP_STARTED`, and every other event handed to
/// every row, since `StepView::apply` leaves a row alone for events about other steps.
fn apply_to_rows(rows: &mut Vec<StepView>, record: &EventRecord) {
    match StepView::started(record) {
        Some(row) => rows.push(row),
        None => rows.iter_mut().for_each(|row| row.apply(record)),
    }
}

fn through_json<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    let text = serde_json::to_string(value).expect("serializes");
    serde_json::from_str(&text).expect("deserializes what it serialized")
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn decide_only_emits_events_that_apply_accepts(driver in generate::history()) {
        if let Some(refused) = driver.refused.first() {
            prop_assert!(
                false,
                "decide proposed {} for {:?}, and apply refused it: {}",
                refused.record.to_json(),
                refused.command,
                refused.error
            );
        }
        // And a replay of the log from scratch accepts it too.
        let replayed = RunState::fold(&driver.records);
        prop_assert_eq!(replayed, Ok(driver.state.clone()));
    }

    #[test]
    fn a_refused_record_leaves_the_state_unchanged(driver in generate::history()) {
        let mut state = RunState::new();
        for record in &driver.records {
            for probe in probes(&driver) {
                let mut scratch = state.clone();
                if scratch.apply(&record_after(&state, record, probe)).is_err() {
                    prop_assert_eq!(&scratch, &state);
                }
            }
            state.apply(record).expect("the history is accepted");
        }
    }

    #[test]
    fn run_state_folded_in_two_parts_equals_folded_at_once(
        driver in generate::history(),
        at in any::<Index>(),
    ) {
        let cut = split(&driver.records, &at);
        let mut state = RunState::fold(&driver.records[..cut]).expect("prefix is accepted");
        for record in &driver.records[cut..] {
            state.apply(record).expect("rest is accepted");
        }
        prop_assert_eq!(state, driver.state);
    }

    #[test]
    fn run_view_kept_through_json_between_events_equals_the_fold(
        driver in generate::history(),
        at in any::<Index>(),
    ) {
        // The first event creates the view, so the prefix holds at least that one.
        let cut = split(&driver.records, &at).max(1).min(driver.records.len());
        let Some(prefix) = RunView::fold(&driver.records[..cut]) else {
            // Never created: there is no view to keep.
            prop_assert!(RunView::fold(&driver.records).is_none());
            return Ok(());
        };
        // The store keeps the row in a table between events.
        let mut view = through_json(&prefix);
        prop_assert_eq!(&view, &prefix);
        for record in &driver.records[cut..] {
            view.apply(record);
        }
        prop_assert_eq!(Some(view), RunView::fold(&driver.records));
    }

    #[test]
    fn step_views_kept_through_json_between_events_equal_the_fold(
        driver in generate::history(),
        at in any::<Index>(),
    ) {
        let cut = split(&driver.records, &at);
        let prefix = StepView::fold(&driver.records[..cut]);
        let mut rows: Vec<StepView> = prefix.iter().map(through_json).collect();
        prop_assert_eq!(&rows, &prefix);
        for record in &driver.records[cut..] {
            apply_to_rows(&mut rows, record);
        }
        prop_assert_eq!(rows, StepView::fold(&driver.records));
    }

    #[test]
    fn report_rows_added_one_event_at_a_time_equal_the_fold(
        driver in generate::history(),
        at in any::<Index>(),
    ) {
        let cut = split(&driver.records, &at);
        let mut report = Report::fold(&driver.records[..cut]);
        let mut rows = report.rows.clone();
        for record in &driver.records[cut..] {
            let added = report.apply(record);
            rows.extend_from_slice(&report.rows[report.rows.len() - added..]);
        }
        let whole = Report::fold(&driver.records);
        prop_assert_eq!(&rows, &whole.rows);
        prop_assert_eq!(report.to_tsv(), whole.to_tsv());
    }

    #[test]
    fn experiment_table_kept_one_event_at_a_time_equals_the_fold(
        driver in generate::history(),
        at in any::<Index>(),
    ) {
        if driver.records.is_empty() {
            return Ok(());
        }
        let cut = split(&driver.records, &at).max(1);
        let Some(mut table) = ExperimentTable::fold(&driver.records[..cut]) else {
            prop_assert!(ExperimentTable::fold(&driver.records).is_none());
            return Ok(());
        };
        for record in &driver.records[cut..] {
            table.apply(record);
        }
        let whole = ExperimentTable::fold(&driver.records).expect("the same first event");
        prop_assert_eq!(&table, &whole);
        let tsv = whole.to_tsv();
        let mut lines = tsv.lines();
        prop_assert_eq!(lines.next(), Some(EXPERIMENTS_HEADER));
        for line in lines {
            prop_assert_eq!(line.split('\t').count(), 13, "row {:?}", line);
        }
        prop_assert_eq!(tsv.lines().count(), whole.rows.len() + 1);
    }

    #[test]
    fn run_log_appended_one_event_at_a_time_equals_the_fold(
        driver in generate::history(),
        at in any::<Index>(),
    ) {
        let cut = split(&driver.records, &at);
        let mut log = RunLog::fold(&driver.records[..cut]);
        for record in &driver.records[cut..] {
            log.apply(record);
        }
        prop_assert_eq!(log, RunLog::fold(&driver.records));
    }

    #[test]
    fn report_and_run_log_stay_line_oriented(driver in generate::history()) {
        let tsv = Report::fold(&driver.records).to_tsv();
        let mut lines = tsv.lines();
        prop_assert_eq!(lines.next(), Some(REPORT_HEADER));
        for line in lines {
            prop_assert_eq!(line.split('\t').count(), 11, "row {:?}", line);
        }
        prop_assert!(tsv.ends_with('\n'));
        let log = RunLog::fold(&driver.records).text;
        prop_assert_eq!(log.lines().count(), driver.records.len());
        prop_assert!(log.is_empty() || log.ends_with('\n'));
    }

    /// `Summary` has no public `apply`, so it cannot be kept incrementally; instead its figures
    /// must agree with the other projections of the same history.
    #[test]
    fn summary_agrees_with_run_view_and_steps(driver in generate::history(), at in any::<Index>()) {
        let cut = split(&driver.records, &at);
        for records in [&driver.records[..cut], &driver.records[..]] {
            let folds = (Summary::fold(records), RunView::fold(records));
            let (Some(summary), Some(view)) = folds else {
                prop_assert!(Summary::fold(records).is_none());
                prop_assert!(RunView::fold(records).is_none());
                continue;
            };
            let finished: Vec<&StepFinished> = records
                .iter()
                .filter_map(|r| match &r.event {
                    Event::StepFinished(step) => Some(step),
                    _ => None,
                })
                .collect();
            let count = |phase: Phase, status: Option<StepStatus>| {
                finished
                    .iter()
                    .filter(|s| s.phase == phase && status.is_none_or(|status| s.status == status))
                    .count() as u32
            };
            prop_assert_eq!(summary.run_id, view.id);
            prop_assert_eq!(summary.cost_usd, view.cost_usd);
            prop_assert_eq!(summary.iterations_run, count(Phase::Implementation, None));
            prop_assert_eq!(summary.review_iterations, count(Phase::Review, None));
            prop_assert_eq!(
                summary.verification_passes,
                count(Phase::Verification, Some(StepStatus::Succeeded))
            );
            prop_assert_eq!(
                summary.verification_failures,
                count(Phase::Verification, Some(StepStatus::Failed))
            );
            prop_assert_eq!(
                summary.input_tokens,
                finished.iter().filter_map(|s| s.tokens).map(|t| t.input).sum::<u64>()
            );
            prop_assert_eq!(
                summary.last_exit_code,
                finished
                    .iter()
                    .rfind(|s| s.phase == Phase::Implementation)
                    .and_then(|s| s.exit_code)
            );
            prop_assert_eq!(summary.exit_reason, view.exit_reason);
            prop_assert_eq!(summary.end_ms.is_some(), view.status.is_terminal());
        }
    }

    #[test]
    fn run_view_agrees_with_run_state(driver in generate::history()) {
        let mut state = RunState::new();
        let mut view: Option<RunView> = None;
        for record in &driver.records {
            state.apply(record).expect("the history is accepted");
            match &mut view {
                Some(view) => view.apply(record),
                None => view = RunView::created(record),
            }
            let view = view.as_ref().expect("the first event creates the run");
            prop_assert_eq!(Some(view.status), state.status());
            prop_assert_eq!(view.version, state.version());
            prop_assert_eq!(view.id, record.run_id);
            prop_assert_eq!(
                view.current_step.as_ref().map(|step| step.id),
                state.open_step().map(|step| step.step_id)
            );
            let postmortem_running = view.postmortem.as_deref() == Some("running");
            prop_assert_eq!(postmortem_running, state.postmortem_running());
        }
    }

    #[test]
    fn terminal_states_absorb(driver in generate::history()) {
        let mut state = RunState::new();
        let mut ended: Option<RunStatus> = None;
        for record in &driver.records {
            state.apply(record).expect("the history is accepted");
            let status = state.status().expect("created");
            // Only a retry leaves FAILED or CANCELED, and a request for changes any end;
            // nothing else leaves COMPLETED, FAILED or CANCELED.
            if let Some(previous) = ended {
                let retried = (matches!(previous, RunStatus::Failed | RunStatus::Canceled)
                    && matches!(record.event, Event::RunRetried(_)))
                    || matches!(record.event, Event::ChangesRequested(_));
                let event_type = record.event.event_type();
                prop_assert!(
                    status == previous || retried,
                    "{} moved a {} run to {}", event_type, previous, status
                );
            }
            ended = status.is_terminal().then_some(status);
            if !status.is_terminal() {
                continue;
            }
            for probe in probes(&driver) {
                let event_type = probe.event_type();
                let mut scratch = state.clone();
                let result = scratch.apply(&record_after(&state, record, probe));
                let running = state.postmortem_running();
                let worktree = state.worktree().is_some();
                let expected = accepted_after_the_end(status, running, worktree, event_type);
                let why = format!("{event_type} in {status}: {result:?}");
                prop_assert_eq!(result.is_ok(), expected, "{}", why);
                if let Err(error) = result {
                    let off_the_point = matches!(
                        error,
                        DomainError::VersionGap { .. } | DomainError::WrongRun { .. }
                    );
                    prop_assert!(!off_the_point, "{} refused for {}", event_type, error);
                }
            }
        }
    }

    #[test]
    fn a_step_finishes_at_most_once_and_only_after_it_started(driver in generate::history()) {
        let mut started: BTreeSet<StepId> = BTreeSet::new();
        let mut finished: BTreeSet<StepId> = BTreeSet::new();
        for record in &driver.records {
            match &record.event {
                Event::StepStarted(step) => {
                    prop_assert!(started.insert(step.step_id), "{} started twice", step.step_id);
                }
                Event::StepFinished(step) => {
                    let id = step.step_id;
                    prop_assert!(started.contains(&id), "{} finished before it started", id);
                    prop_assert!(finished.insert(step.step_id), "{} finished twice", step.step_id);
                }
                _ => {}
            }
        }
    }

    #[test]
    fn event_records_round_trip_through_json(driver in generate::history()) {
        for record in &driver.records {
            let text = record.to_json();
            prop_assert!(!text.contains('\n'), "not one line: {}", text);
            prop_assert_eq!(&EventRecord::from_json(&text).expect("decodes"), record);
            let via_serde: EventRecord = serde_json::from_str(&text).expect("deserializes");
            prop_assert_eq!(&via_serde, record);
            let value = serde_json::to_value(record).expect("serializes");
            let from_value: EventRecord = serde_json::from_value(value).expect("from a value");
            prop_assert_eq!(&from_value, record);
            // The store keeps type and payload in columns of their own.
            let event = Event::decode(record.event.event_type(), &record.event.payload_json())
                .expect("payload decodes");
            prop_assert_eq!(&event, &record.event);
        }
        let jsonl = events_jsonl(&driver.records);
        let decoded: Vec<EventRecord> = jsonl
            .lines()
            .map(|line| EventRecord::from_json(line).expect("each line decodes"))
            .collect();
        prop_assert_eq!(decoded, driver.records);
    }

    #[test]
    fn records_with_a_version_gap_or_another_runs_id_are_refused(driver in generate::history()) {
        let mut state = RunState::new();
        for record in &driver.records {
            let current = state.version();
            for version in [current, Version(current.0 + 2), Version(current.0 + 100)] {
                let mut scratch = state.clone();
                let skewed = EventRecord { version, ..record.clone() };
                prop_assert_eq!(
                    scratch.apply(&skewed),
                    Err(DomainError::VersionGap { current, got: version })
                );
                prop_assert_eq!(&scratch, &state);
            }
            if let Some(expected) = state.run_id() {
                let mut scratch = state.clone();
                let foreign = EventRecord { run_id: generate::other_run_id(), ..record.clone() };
                prop_assert_eq!(
                    scratch.apply(&foreign),
                    Err(DomainError::WrongRun { expected, got: generate::other_run_id() })
                );
                prop_assert_eq!(&scratch, &state);
            }
            state.apply(record).expect("the history is accepted");
        }
    }
}

/// The generator is only as good as the states it reaches: check that a sample of scripts
/// uses every command, gets refused for many reasons, and reaches every ending and a
/// finished postmortem.
#[test]
fn generated_histories_reach_deep_states() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = generate::history();
    let mut commands: HashMap<&'static str, usize> = HashMap::new();
    let mut errors: BTreeSet<String> = BTreeSet::new();
    let mut events: BTreeSet<EventType> = BTreeSet::new();
    let mut endings: BTreeSet<&'static str> = BTreeSet::new();
    for _ in 0..256 {
        let driver = strategy.new_tree(&mut runner).expect("generates").current();
        for outcome in &driver.outcomes {
            *commands.entry(command_name(&outcome.command)).or_default() += 1;
            if let Err(error) = &outcome.result {
                let name = format!("{error:?}");
                errors.insert(name.split([' ', '{']).next().unwrap_or_default().to_owned());
            }
        }
        events.extend(driver.records.iter().map(|r| r.event.event_type()));
        if let Some(status) = driver.state.status() {
            endings.insert(status.as_str());
        }
    }
    assert_eq!(
        commands.len(),
        COMMAND_VARIANTS,
        "commands generated: {commands:?}"
    );
    let all: BTreeSet<EventType> = EventType::ALL.iter().copied().collect();
    assert_eq!(events, all, "event types reached");
    for status in ["COMPLETED", "FAILED", "CANCELED"] {
        assert!(
            endings.contains(status),
            "no history ends {status}: {endings:?}"
        );
    }
    for error in [
        "NotCreated",
        "AlreadyCreated",
        "IllegalInState",
        "StepOpen",
        "NoOpenStep",
        "OtherStepOpen",
        "StepAlreadyFinished",
        "StepAlreadyStarted",
        "PhaseMismatch",
        "NotFinal",
        "PostmortemRunning",
        "NoPostmortem",
    ] {
        assert!(
            errors.contains(error),
            "never refused with {error}: {errors:?}"
        );
    }
}
