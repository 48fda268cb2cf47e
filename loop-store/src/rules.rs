//! What the store itself refuses, whatever the database behind it; the domain's rules are
//! `loop_core::decide`'s.

use loop_core::{Event, EventType, RunId, Version};

use crate::error::StoreError;

/// The store's own rules; the domain's are `loop_core::decide`'s.
pub(crate) fn validate(
    run_id: RunId,
    expected: Version,
    events: &[Event],
) -> Result<(), StoreError> {
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
