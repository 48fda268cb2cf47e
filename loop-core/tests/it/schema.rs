//! The event log's JSON: what this build writes, and what it must still read.
//!
//! `tests/data/events/` holds one envelope per event type as an older (schema 1) binary wrote
//! it, with every optional or defaulted field left out, named `<TYPE>.json`; and a few written
//! by a newer binary, with fields this build does not know (`<TYPE>.newer.json`) or with only
//! the fields every writer wrote (`<TYPE>.minimal.json`), or with a name of a closed set this
//! build does not know (`WORKTREE_CREATED.newer.json`'s provider, `REVIEW_ACTION.newer.json`'s
//! action: composed for this test, not recorded).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;

use loop_core::event::{
    DecodeError, DiffSide, NameSource, Phase, Provider, ReviewKind, RunStarted, SCHEMA, StepStatus,
    Tokens,
};
use loop_core::{Event, EventRecord, EventType, RunId, Seq, Version};

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/events")
}

/// Every fixture: file name, the type its name says, and its text.
fn fixtures() -> Vec<(String, String, String)> {
    let mut files: Vec<(String, String, String)> = fs::read_dir(fixtures_dir())
        .expect("tests/data/events exists")
        .map(|entry| {
            let path = entry.expect("readable entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let event_type = name.split('.').next().unwrap().to_owned();
            let text = fs::read_to_string(&path).expect("readable fixture");
            (name, event_type, text)
        })
        .filter(|(name, _, _)| name.ends_with(".json"))
        .collect();
    files.sort();
    files
}

fn fixture(name: &str) -> EventRecord {
    let text = fs::read_to_string(fixtures_dir().join(name)).expect("fixture exists");
    EventRecord::from_json(&text).expect("fixture decodes")
}

#[test]
fn every_event_type_has_an_old_fixture() {
    let old: BTreeSet<String> = fixtures()
        .into_iter()
        .filter(|(name, event_type, _)| *name == format!("{event_type}.json"))
        .map(|(_, event_type, _)| event_type)
        .collect();
    let all: BTreeSet<String> = EventType::ALL
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect();
    assert_eq!(old, all);
    assert_eq!(EventType::ALL.len(), 34);
}

#[test]
fn every_fixture_decodes_as_the_type_it_is_named_for() {
    let fixtures = fixtures();
    assert!(fixtures.len() > EventType::ALL.len());
    for (name, event_type, text) in fixtures {
        let record = EventRecord::from_json(&text)
            .unwrap_or_else(|error| panic!("{name} does not decode: {error}"));
        assert_eq!(record.event.event_type().as_str(), event_type, "{name}");
        let via_serde: EventRecord = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{name} does not deserialize: {error}"));
        assert_eq!(via_serde, record, "{name}");
        // What this build writes back reads the same again.
        assert_eq!(
            EventRecord::from_json(&record.to_json()).unwrap(),
            record,
            "{name}"
        );
    }
}

#[test]
fn old_events_get_defaults_for_fields_added_since() {
    let Event::RunCreated(created) = fixture("RUN_CREATED.json").event else {
        panic!("RUN_CREATED fixture");
    };
    assert_eq!(created.name_source, NameSource::SpecSlug);
    assert!(created.config.is_empty());

    let Event::StepStarted(started) = fixture("STEP_STARTED.json").event else {
        panic!("STEP_STARTED fixture");
    };
    assert_eq!(started.attempt, 1);
    assert_eq!(started.prompt_path, None);

    let Event::StepFinished(finished) = fixture("STEP_FINISHED.json").event else {
        panic!("STEP_FINISHED fixture");
    };
    assert_eq!(finished.status, StepStatus::Succeeded);
    assert_eq!(finished.exit_code, Some(0));
    assert_eq!(finished.duration_ms, 61_234);
    assert_eq!(finished.output_bytes, 48_213);
    assert_eq!(finished.output_lines, 0);
    assert_eq!(finished.tokens, None);
    assert_eq!(finished.cost_usd, None);
    assert_eq!((finished.tasks_done, finished.tasks_total), (None, None));
    assert_eq!(finished.message, None);

    let Event::StepFinished(minimal) = fixture("STEP_FINISHED.minimal.json").event else {
        panic!("STEP_FINISHED minimal fixture");
    };
    assert_eq!(minimal.phase, Phase::Merge);
    assert_eq!(minimal.status, StepStatus::Interrupted);
    assert_eq!(
        (minimal.exit_code, minimal.duration_ms, &minimal.output_path),
        (None, 0, &None)
    );

    let Event::WorktreeCreated(worktree) = fixture("WORKTREE_CREATED.json").event else {
        panic!("WORKTREE_CREATED fixture");
    };
    assert!(!worktree.reused);

    let Event::AgentWaiting(waiting) = fixture("AGENT_WAITING.json").event else {
        panic!("AGENT_WAITING fixture");
    };
    assert_eq!(waiting.step_id, None);

    let Event::WatchdogSignal(signal) = fixture("WATCHDOG_SIGNAL.json").event else {
        panic!("WATCHDOG_SIGNAL fixture");
    };
    assert_eq!(signal.detail, "");

    let Event::CompletionDetected(detected) = fixture("COMPLETION_DETECTED.json").event else {
        panic!("COMPLETION_DETECTED fixture");
    };
    assert_eq!(detected.commit, None);

    let Event::MergeFinished(merge) = fixture("MERGE_FINISHED.json").event else {
        panic!("MERGE_FINISHED fixture");
    };
    assert_eq!((merge.commit, merge.conflict), (None, None));

    let Event::ReviewAction(review) = fixture("REVIEW_ACTION.json").event else {
        panic!("REVIEW_ACTION fixture");
    };
    assert!(review.detail.is_empty());
}

#[test]
fn review_comments_and_requests_decode_with_their_lines_and_sides() {
    let Event::ReviewComment(comment) = fixture("REVIEW_COMMENT.json").event else {
        panic!("REVIEW_COMMENT fixture");
    };
    assert_eq!((comment.path.as_str(), comment.line), ("calc/ops.py", 12));
    assert_eq!(
        comment.side,
        DiffSide::New,
        "a comment without a side is on the new file"
    );
    let Event::ChangesRequested(requested) = fixture("CHANGES_REQUESTED.json").event else {
        panic!("CHANGES_REQUESTED fixture");
    };
    assert_eq!(requested.comments.len(), 2);
    assert_eq!(requested.comments[0], comment);
    assert_eq!(requested.comments[1].side, DiffSide::Old);
    assert_eq!(requested.body.as_deref(), Some("Otherwise good."));
}

#[test]
fn newer_events_with_unknown_fields_decode() {
    let record = fixture("STEP_FINISHED.newer.json");
    assert_eq!(record.seq, Seq(200));
    assert_eq!(record.version, Version(13));
    assert_eq!(record.schema, 2);
    let Event::StepFinished(finished) = record.event else {
        panic!("STEP_FINISHED newer fixture");
    };
    assert_eq!(finished.status, StepStatus::Failed);
    assert_eq!(
        finished.tokens,
        Some(Tokens {
            input: 10,
            output: 5,
            cached: Default::default(),
            cache_write: Default::default(),
            reasoning: Default::default(),
        })
    );
    assert_eq!(finished.cost_usd, Some(0.25));
    assert_eq!(finished.message.as_deref(), Some("changes requested"));

    let Event::RunCreated(created) = fixture("RUN_CREATED.newer.json").event else {
        panic!("RUN_CREATED newer fixture");
    };
    assert_eq!(created.name_source, NameSource::Haiku);
    assert_eq!(
        created.config,
        BTreeMap::from([("model".to_owned(), "opus".to_owned())])
    );
}

#[test]
fn names_of_a_newer_build_decode_as_unknown_and_are_written_back_unchanged() {
    let created = fixture("WORKTREE_CREATED.newer.json");
    let Event::WorktreeCreated(payload) = &created.event else {
        panic!("WORKTREE_CREATED newer fixture");
    };
    assert_eq!(payload.provider, Provider::Unknown("jj".to_owned()));
    assert!(payload.provider.has_worktree());
    let action = fixture("REVIEW_ACTION.newer.json");
    let Event::ReviewAction(payload) = &action.event else {
        panic!("REVIEW_ACTION newer fixture");
    };
    assert_eq!(payload.action, ReviewKind::Unknown("rebase".to_owned()));
    for (record, name, field) in [
        (created, "WORKTREE_CREATED.newer.json", "provider"),
        (action, "REVIEW_ACTION.newer.json", "action"),
    ] {
        let text = fs::read_to_string(fixtures_dir().join(name)).expect("fixture");
        let written: serde_json::Value = serde_json::from_str(&record.to_json()).unwrap();
        let read: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(written["payload"][field], read["payload"][field], "{name}");
    }
    // The names this build writes are the ones older builds wrote.
    let Event::WorktreeCreated(old) = fixture("WORKTREE_CREATED.json").event else {
        panic!("WORKTREE_CREATED fixture");
    };
    assert_eq!(old.provider, Provider::Git);
    let Event::ReviewAction(old) = fixture("REVIEW_ACTION.json").event else {
        panic!("REVIEW_ACTION fixture");
    };
    assert_eq!(old.action, ReviewKind::Diff);
}

#[test]
fn writes_the_contract_envelope_in_contract_order() {
    let run_id: RunId = "01996c87-7c00-7a3e-9d2f-5b6c1e0f4a21".parse().unwrap();
    let record = EventRecord {
        seq: Seq(42),
        run_id,
        version: Version(7),
        ts_ms: 1_790_000_000_000,
        schema: SCHEMA,
        event: RunStarted {}.into(),
    };
    assert_eq!(
        record.to_json(),
        r#"{"seq":42,"run_id":"01996c87-7c00-7a3e-9d2f-5b6c1e0f4a21","version":7,"type":"RUN_STARTED","ts_ms":1790000000000,"schema":1,"payload":{}}"#
    );
}

#[test]
fn envelope_without_schema_reads_as_schema_one() {
    let record = EventRecord::from_json(
        r#"{"seq":1,"run_id":"01996c87-7c00-7a3e-9d2f-5b6c1e0f4a21","version":1,"type":"RUN_STARTED","ts_ms":0,"payload":{}}"#,
    )
    .unwrap();
    assert_eq!(record.schema, 1);
}

#[test]
fn event_type_names_are_distinct_and_parse_back() {
    let names: BTreeSet<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    assert_eq!(names.len(), EventType::ALL.len());
    for event_type in EventType::ALL {
        let name = event_type.as_str();
        assert_eq!(name.parse::<EventType>().unwrap(), *event_type);
        assert_eq!(event_type.to_string(), name);
        assert!(
            name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
            "{name} is not SCREAMING_SNAKE"
        );
    }
}

fn envelope(event_type: &str, payload: &str) -> String {
    format!(
        r#"{{"seq":1,"run_id":"01996c87-7c00-7a3e-9d2f-5b6c1e0f4a21","version":1,"type":"{event_type}","ts_ms":1790000000000,"schema":1,"payload":{payload}}}"#
    )
}

#[test]
fn unknown_event_type_is_named_in_the_error() {
    let text = envelope("RUN_EXPLODED", "{}");
    match EventRecord::from_json(&text) {
        Err(DecodeError::UnknownType(name)) => assert_eq!(name, "RUN_EXPLODED"),
        other => panic!("expected UnknownType, got {other:?}"),
    }
    let error = EventRecord::from_json(&text).unwrap_err();
    assert!(error.to_string().contains("RUN_EXPLODED"), "{error}");
    let error = serde_json::from_str::<EventRecord>(&text).unwrap_err();
    assert!(error.to_string().contains("RUN_EXPLODED"), "{error}");
    // Type names are exact: the wire form is SCREAMING_SNAKE only.
    assert!(matches!(
        EventRecord::from_json(&envelope("run_started", "{}")),
        Err(DecodeError::UnknownType(name)) if name == "run_started"
    ));
}

#[test]
fn payload_of_the_wrong_shape_names_the_event_type() {
    let cases = [
        (
            "STEP_STARTED",
            r#"{"step_id":"01996c87-8a10-7b41-8c5d-2e3f4a5b6c7d","phase":"implementation","iteration":"one"}"#,
            EventType::StepStarted,
        ),
        (
            "STEP_FINISHED",
            r#"{"step_id":"01996c87-8a10-7b41-8c5d-2e3f4a5b6c7d","phase":"implementation","status":"DONE"}"#,
            EventType::StepFinished,
        ),
        (
            "RUN_COMPLETED",
            r#"{"exit_reason":"complete_plan"}"#,
            EventType::RunCompleted,
        ),
        (
            "RUN_FAILED",
            r#"{"exit_reason":"gave_up","reason":"x"}"#,
            EventType::RunFailed,
        ),
        ("POSTMORTEM_END", r#"[]"#, EventType::PostmortemEnd),
        (
            "AGENT_RETRY",
            r#"{"step_id":"not-a-uuid","attempt":1,"delay_ms":1,"reason":"x"}"#,
            EventType::AgentRetry,
        ),
    ];
    for (name, payload, expected) in cases {
        let error = EventRecord::from_json(&envelope(name, payload)).unwrap_err();
        match &error {
            DecodeError::Payload { event_type, .. } => assert_eq!(*event_type, expected),
            other => panic!("{name}: expected a payload error, got {other:?}"),
        }
        assert!(error.to_string().contains(name), "{error}");
        // The store's path: type from its column, payload from another.
        let error = Event::decode(expected, payload).unwrap_err();
        assert!(
            matches!(error, DecodeError::Payload { event_type, .. } if event_type == expected),
            "{error:?}"
        );
    }
}

#[test]
fn text_that_is_not_an_envelope_is_an_envelope_error() {
    let cases = [
        "",
        "garbage",
        "{",
        "[1,2,3]",
        "{}",
        "null",
        // No payload.
        r#"{"seq":1,"run_id":"01996c87-7c00-7a3e-9d2f-5b6c1e0f4a21","version":1,"type":"RUN_STARTED","ts_ms":0}"#,
        // A run id that is not a UUID.
        r#"{"seq":1,"run_id":"run-1","version":1,"type":"RUN_STARTED","ts_ms":0,"payload":{}}"#,
        // A seq that is not a number.
        r#"{"seq":"1","run_id":"01996c87-7c00-7a3e-9d2f-5b6c1e0f4a21","version":1,"type":"RUN_STARTED","ts_ms":0,"payload":{}}"#,
        // Two records on one line.
        r#"{"seq":1,"run_id":"01996c87-7c00-7a3e-9d2f-5b6c1e0f4a21","version":1,"type":"RUN_STARTED","ts_ms":0,"payload":{}}{}"#,
    ];
    for text in cases {
        match EventRecord::from_json(text) {
            Err(DecodeError::Envelope(_)) => {}
            other => panic!("{text:?}: expected an envelope error, got {other:?}"),
        }
        assert!(
            serde_json::from_str::<EventRecord>(text).is_err(),
            "{text:?}"
        );
    }
}
