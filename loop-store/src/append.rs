//! The part of an append that does not depend on the database behind it: what the store itself
//! refuses (the domain's rules are `loop_core::decide`'s), how records are numbered and how the
//! run's view follows them. Both stores read what this needs under their write lock, call
//! [`fold`], then check [`Folded::started`] against the steps already in the log and write.
//! One copy of the rule, so the two backends agree by construction, not only because the
//! conformance suite checks them.

use loop_core::event::SCHEMA;
use loop_core::projection::RunView;
use loop_core::{Event, EventRecord, EventType, RunId, Seq, StepId, Version};

use crate::error::StoreError;

/// One append as its caller asked for it.
#[derive(Clone)]
pub(crate) struct Proposed {
    pub(crate) run_id: RunId,
    pub(crate) expected: Version,
    pub(crate) ts_ms: i64,
    pub(crate) events: Vec<Event>,
}

/// An append that passed every check.
pub(crate) struct Folded {
    /// The records to store, numbered from the seq the caller gave.
    pub(crate) records: Vec<EventRecord>,
    /// The step ids the append starts, each once.
    pub(crate) started: Vec<StepId>,
}

/// Checks `proposed` against the run as stored (`actual`, and its `view` when it has one;
/// `None` for a new run), numbers its records from `first_seq` and folds them into `view`.
/// `owner` says which run, if any, already started a step id (step ids are global).
///
/// Refuses, writing nothing and leaving `view` as it was: a stale expected version
/// ([`StoreError::Conflict`]), and ([`StoreError::InvalidAppend`]) an empty append, a cost that
/// is not a finite number, a `RUN_CREATED` anywhere but first in a run, a step started twice
/// (in this append, or by any run before), a run without `RUN_CREATED`. Every check comes
/// before the view changes, so a caller can keep folding a run's later appends into the same
/// view after one was refused.
pub(crate) fn fold(
    proposed: Proposed,
    actual: Version,
    view: &mut Option<RunView>,
    first_seq: Seq,
    mut owner: impl FnMut(StepId) -> Result<Option<String>, StoreError>,
) -> Result<Folded, StoreError> {
    let Proposed {
        run_id,
        expected,
        ts_ms,
        events,
    } = proposed;
    if actual != expected {
        return Err(StoreError::Conflict {
            run_id,
            expected,
            actual,
        });
    }
    validate(run_id, expected, &events)?;
    let mut started: Vec<StepId> = Vec::new();
    for step_id in starts(&events) {
        // Step ids are global: with a second start, two steps would have one id and nothing
        // that names a step could tell them apart.
        if started.contains(&step_id) {
            return Err(already_started(run_id, step_id, &run_id.to_string()));
        }
        if let Some(other) = owner(step_id)? {
            return Err(already_started(run_id, step_id, &other));
        }
        started.push(step_id);
    }
    if view.is_none() && actual != Version::NONE {
        return Err(StoreError::InvalidAppend {
            run_id,
            reason: "the run has no RUN_CREATED event".to_owned(),
        });
    }
    let records: Vec<EventRecord> = events
        .into_iter()
        .enumerate()
        .map(|(i, event)| EventRecord {
            seq: Seq(first_seq.0 + i as u64),
            run_id,
            version: Version(expected.0 + 1 + i as u64),
            ts_ms,
            schema: SCHEMA,
            event,
        })
        .collect();
    for record in &records {
        match view {
            Some(view) => view.apply(record),
            // `validate` made a new run's first event its RUN_CREATED.
            None => *view = RunView::created(record),
        }
    }
    Ok(Folded { records, started })
}

/// The step ids `events` start, in order.
pub(crate) fn starts(events: &[Event]) -> impl Iterator<Item = StepId> + '_ {
    events.iter().filter_map(|event| match event {
        Event::StepStarted(step) => Some(step.step_id),
        _ => None,
    })
}

/// The refusal of an append by `run_id` that starts a step `owner` already started.
pub(crate) fn already_started(
    run_id: RunId,
    step_id: impl std::fmt::Display,
    owner: &str,
) -> StoreError {
    StoreError::InvalidAppend {
        run_id,
        reason: format!("step {step_id} was already started by run {owner}"),
    }
}

/// What an append's events must be, whatever the run holds.
fn validate(run_id: RunId, expected: Version, events: &[Event]) -> Result<(), StoreError> {
    let refuse = |reason: &str| {
        Err(StoreError::InvalidAppend {
            run_id,
            reason: reason.to_owned(),
        })
    };
    if events.is_empty() {
        return refuse("no events to append");
    }
    for (i, event) in events.iter().enumerate() {
        // JSON has no NaN or infinity: serde_json would store `null`, the event would read back
        // without its cost and the run's stored view would no longer parse.
        if let Event::StepFinished(finished) = event
            && let Some(cost) = finished.cost_usd
            && !cost.is_finite()
        {
            return refuse(&format!(
                "event {} ({}): cost_usd {cost} is not a finite number",
                i + 1,
                event.event_type()
            ));
        }
        let first = expected == Version::NONE && i == 0;
        let created = event.event_type() == EventType::RunCreated;
        if first && !created {
            return refuse("a run's first event must be RUN_CREATED");
        }
        if !first && created {
            return refuse("RUN_CREATED can only be a run's first event");
        }
    }
    Ok(())
}
