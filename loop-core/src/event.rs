//! Events: the only facts there are about a run.
//!
//! An [`Event`] is one typed variant per event type in the contract; an [`EventRecord`] is an
//! event as stored, with its global `seq`, the run's `version`, the time and the payload schema.
//! The JSON form of a record is the contract's envelope:
//! `{"seq","run_id","version","type","ts_ms","schema","payload"}` with SCREAMING_SNAKE types.

pub mod experiment;
mod names;
mod paid;
pub mod payload;
mod review;
mod steps;

use std::fmt;
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use thiserror::Error;

use crate::ids::{RunId, Seq, Version};
pub use experiment::*;
pub use names::{MergeCode, Provider, ReviewKind, Signal, Signals};
pub use payload::*;
pub use review::{ChangesRequested, DiffSide, ReviewComment};

/// The payload schema this build writes. Older schemas still decode (see [`payload`]).
pub const SCHEMA: u32 = 1;

/// Why bytes could not become an event.
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("payload of {event_type} does not decode: {source}")]
    Payload {
        event_type: EventType,
        #[source]
        source: serde_json::Error,
    },
    #[error("event record is not valid JSON of the envelope: {0}")]
    Envelope(#[source] serde_json::Error),
}

macro_rules! events {
    ($($variant:ident => $name:literal,)+) => {
        /// One fact about a run. The variant names the event type; its payload says the rest.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Event {
            $($variant($variant),)+
        }

        /// The type of an event, without its payload.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $($variant,)+
        }

        impl EventType {
            /// Every event type, in contract order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)+];

            /// The SCREAMING_SNAKE name used in JSON, in SQLite and on SSE frames.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)+
                }
            }
        }

        impl FromStr for EventType {
            type Err = DecodeError;
            fn from_str(s: &str) -> Result<Self, DecodeError> {
                match s {
                    $($name => Ok(EventType::$variant),)+
                    other => Err(DecodeError::UnknownType(other.to_owned())),
                }
            }
        }

        impl Event {
            pub const fn event_type(&self) -> EventType {
                match self {
                    $(Event::$variant(_) => EventType::$variant,)+
                }
            }

            /// The payload as JSON text.
            pub fn payload_json(&self) -> String {
                // Payloads are plain structs of strings, numbers and maps with string keys:
                // serializing them cannot fail.
                match self {
                    $(Event::$variant(p) => serde_json::to_string(p),)+
                }
                .expect("event payloads always serialize")
            }

            /// The payload as a JSON value.
            pub fn payload_value(&self) -> serde_json::Value {
                match self {
                    $(Event::$variant(p) => serde_json::to_value(p),)+
                }
                .expect("event payloads always serialize")
            }

            /// Decodes a payload whose type is already known (as it is in a database row).
            pub fn decode(event_type: EventType, payload: &str) -> Result<Event, DecodeError> {
                let payload_error = |source| DecodeError::Payload { event_type, source };
                Ok(match event_type {
                    $(EventType::$variant => {
                        Event::$variant(serde_json::from_str(payload).map_err(payload_error)?)
                    })+
                })
            }

            fn serialize_payload<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(Event::$variant(p) => p.serialize(serializer),)+
                }
            }
        }

        $(
            impl From<$variant> for Event {
                fn from(p: $variant) -> Event {
                    Event::$variant(p)
                }
            }
        )+
    };
}

events! {
    RunCreated => "RUN_CREATED",
    RunNamed => "RUN_NAMED",
    RunStarted => "RUN_STARTED",
    RunClaimed => "RUN_CLAIMED",
    RunPaused => "RUN_PAUSED",
    RunPauseRequested => "RUN_PAUSE_REQUESTED",
    RunResumed => "RUN_RESUMED",
    RunCanceled => "RUN_CANCELED",
    RunRetried => "RUN_RETRIED",
    RunCompleted => "RUN_COMPLETED",
    RunFailed => "RUN_FAILED",
    WorktreeProviderSelected => "WORKTREE_PROVIDER_SELECTED",
    WorktreeCreated => "WORKTREE_CREATED",
    WorktreeRemoved => "WORKTREE_REMOVED",
    StepStarted => "STEP_STARTED",
    StepFinished => "STEP_FINISHED",
    AgentRetry => "AGENT_RETRY",
    AgentWaiting => "AGENT_WAITING",
    VerificationCommand => "VERIFICATION_COMMAND",
    CompletionDetected => "COMPLETION_DETECTED",
    CompletionRejected => "COMPLETION_REJECTED",
    WatchdogSignal => "WATCHDOG_SIGNAL",
    WatchdogRewrite => "WATCHDOG_REWRITE",
    MergeStarted => "MERGE_STARTED",
    MergeFinished => "MERGE_FINISHED",
    ArtifactWritten => "ARTIFACT_WRITTEN",
    PostmortemStart => "POSTMORTEM_START",
    PostmortemEnd => "POSTMORTEM_END",
    ReviewAction => "REVIEW_ACTION",
    ExperimentBaseline => "EXPERIMENT_BASELINE",
    ExperimentMeasured => "EXPERIMENT_MEASURED",
    ExperimentDecided => "EXPERIMENT_DECIDED",
    ReviewComment => "REVIEW_COMMENT",
    ChangesRequested => "CHANGES_REQUESTED",
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Event {
    /// Whether this event ends a run (a FAILED run can still be retried).
    pub const fn is_terminal(&self) -> bool {
        matches!(
            self,
            Event::RunCompleted(_) | Event::RunFailed(_) | Event::RunCanceled(_)
        )
    }

    /// What the paid agent calls this event records cost: each call is recorded once, on the
    /// `AGENT_RETRY` or `AGENT_WAITING` it led to, or on the `STEP_FINISHED` that closed its
    /// step, the `RUN_NAMED` of the naming call, the `POSTMORTEM_END` of the analyses. A run's
    /// cost and its budget add up every one of them.
    pub fn paid(&self) -> Option<Paid> {
        let paid = match self {
            Event::StepFinished(step) => Paid {
                cost_usd: step.cost_usd,
                tokens: step.tokens,
                cost_estimated: step.cost_estimated,
            },
            Event::AgentRetry(retry) => retry.paid,
            Event::AgentWaiting(wait) => wait.paid,
            Event::RunNamed(named) => named.paid,
            Event::PostmortemEnd(end) => end.paid,
            _ => return None,
        };
        (paid.cost_usd.is_some() || paid.tokens.is_some()).then_some(paid)
    }
}

impl RunFailed {
    /// Whether the run failed only because its merge on completion did not land (what earlier
    /// versions did; the run's work was done and verified).
    pub fn merge_did_not_land(&self) -> bool {
        match &self.cause {
            Some(cause) => matches!(cause, FailureCause::Merge { .. }),
            None => self.reason.starts_with("merge_failed:"),
        }
    }

    /// Whether the watchdog gave the run up (events of older builds only say so in words).
    pub fn watchdog_gave_up(&self) -> bool {
        match &self.cause {
            Some(cause) => matches!(cause, FailureCause::Watchdog { .. }),
            None => self.reason.starts_with("watchdog:"),
        }
    }
}

/// An event as the log holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    pub seq: Seq,
    pub run_id: RunId,
    pub version: Version,
    pub ts_ms: i64,
    pub schema: u32,
    pub event: Event,
}

impl EventRecord {
    /// The contract's JSON envelope, on one line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("event records always serialize")
    }

    /// Parses the contract's JSON envelope.
    pub fn from_json(text: &str) -> Result<EventRecord, DecodeError> {
        let wire: WireRecord = serde_json::from_str(text).map_err(DecodeError::Envelope)?;
        wire.into_record()
    }
}

impl Serialize for EventRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;

        struct Payload<'a>(&'a Event);
        impl Serialize for Payload<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.0.serialize_payload(serializer)
            }
        }

        let mut s = serializer.serialize_struct("Event", 7)?;
        s.serialize_field("seq", &self.seq)?;
        s.serialize_field("run_id", &self.run_id)?;
        s.serialize_field("version", &self.version)?;
        s.serialize_field("type", self.event.event_type().as_str())?;
        s.serialize_field("ts_ms", &self.ts_ms)?;
        s.serialize_field("schema", &self.schema)?;
        s.serialize_field("payload", &Payload(&self.event))?;
        s.end()
    }
}

/// The envelope as it arrives: the payload stays raw until its type is known, whatever the
/// order of the fields.
#[derive(Deserialize)]
struct WireRecord {
    seq: Seq,
    run_id: RunId,
    version: Version,
    #[serde(rename = "type")]
    event_type: String,
    ts_ms: i64,
    #[serde(default = "first_schema")]
    schema: u32,
    payload: Box<RawValue>,
}

fn first_schema() -> u32 {
    1
}

impl WireRecord {
    fn into_record(self) -> Result<EventRecord, DecodeError> {
        let event_type: EventType = self.event_type.parse()?;
        Ok(EventRecord {
            seq: self.seq,
            run_id: self.run_id,
            version: self.version,
            ts_ms: self.ts_ms,
            schema: self.schema,
            event: Event::decode(event_type, self.payload.get())?,
        })
    }
}

impl<'de> Deserialize<'de> for EventRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        WireRecord::deserialize(deserializer)?
            .into_record()
            .map_err(D::Error::custom)
    }
}

/// The envelope's OpenAPI schema, named `Event` as in the contract. Written by hand because the
/// envelope's `Serialize` is: `type` is one of [`EventType::ALL`], and `payload` is an object
/// whose fields depend on `type` (see [`payload`]).
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for EventRecord {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::ToSchema;
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{Ref, RefOr};

        let reference =
            |name: std::borrow::Cow<'static, str>| RefOr::Ref(Ref::from_schema_name(name));
        let event_type = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(EventType::ALL.iter().map(|t| t.as_str())));
        let payload = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("The event's fields; which ones depends on `type`."));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("One event of the log, in the contract's envelope."))
            .property("seq", reference(Seq::name()))
            .property("run_id", reference(RunId::name()))
            .property("version", reference(Version::name()))
            .property("type", event_type)
            .property("ts_ms", <i64 as utoipa::PartialSchema>::schema())
            .property("schema", <u32 as utoipa::PartialSchema>::schema())
            .property("payload", payload)
            .required("seq")
            .required("run_id")
            .required("version")
            .required("type")
            .required("ts_ms")
            .required("schema")
            .required("payload")
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for EventRecord {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Event")
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push((Seq::name().into_owned(), Seq::schema()));
        schemas.push((RunId::name().into_owned(), RunId::schema()));
        schemas.push((Version::name().into_owned(), Version::schema()));
    }
}
