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
pub(crate) struct Proposed {
    pub(crate) run_id: RunId,
    pub(crate) expected: Version,
    pub(crate) ts_ms: i64,
    pub(crate) events: Vec<Event>,
}

/// An append that passed every check this module makes.
pub(crate) struct Folded {
    /// The records to store, numbered from the seq the caller gave.
    pub(crate) records: Vec<EventRecord>,
    /// The run's view after them.
    pub(crate) view: RunView,
    /// The step ids the append starts, each once: step ids are global, so the caller still
    /// refuses the append when another append already started one ([`already_started`]).
    pub(crate) started: Vec<StepId>,
}

/// Checks `proposed` against the run as stored (`actual`, and its view when it has one; `None`
/// for a new run), numbers its records from `first_seq` and folds them into the view.
///
/// Refuses, writing nothing: a stale expected version ([`StoreError::Conflict`]), and
/// ([`StoreError::InvalidAppend`]) an empty append, a cost that is not a finite number, a
/// `RUN_CREATED` anywhere but first in a run, a run without one, a step started twice in one
/// append.
pub(crate) fn fold(
    proposed: Proposed,
    actual: Version,
    mut view: Option<RunView>,
    first_seq: Seq,
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
    let mut started: Vec<StepId> = Vec::new();
    for record in &records {
        match &mut view {
            Some(view) => view.apply(record),
            None => view = RunView::created(record),
        }
        if let Event::StepStarted(step) = &record.event {
            // Step ids are global: with a second start, two steps would have one id and
            // nothing that names a step could tell them apart.
            if started.contains(&step.step_id) {
                return Err(already_started(run_id, step.step_id, &run_id.to_string()));
            }
            started.push(step.step_id);
        }
    }
    let view = view.ok_or_else(|| StoreError::InvalidAppend {
        run_id,
        reason: "the run has no RUN_CREATED event".to_owned(),
    })?;
    Ok(Folded {
        records,
        view,
        started,
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
