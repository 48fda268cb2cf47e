//! An event record from the columns both stores keep it in (`seq, run_id, version, type, ts_ms,
//! schema, payload`), decoded the same way whichever database held them.

use std::path::Path;

use loop_core::event::DecodeError;
use loop_core::{Event, EventRecord, EventType, RunId, Seq, Version};

use crate::error::StoreError;

/// One events row's columns, borrowed from the row.
pub(crate) struct Columns<'a> {
    pub(crate) seq: i64,
    pub(crate) run_id: &'a str,
    pub(crate) version: i64,
    pub(crate) event_type: &'a str,
    pub(crate) ts_ms: i64,
    pub(crate) schema: i64,
    pub(crate) payload: &'a str,
}

impl Columns<'_> {
    /// The record these columns hold; a row that does not decode is [`StoreError::Corrupt`]
    /// and names its seq and run, so the bad row can be found (`at`: the log, for the message).
    pub(crate) fn decode(self, at: &Path) -> Result<EventRecord, StoreError> {
        let seq = Seq(self.seq as u64);
        let corrupt = |source| StoreError::Corrupt {
            path: at.to_owned(),
            seq,
            run_id: self.run_id.to_owned(),
            source,
        };
        // A bad run id is a bad field of the envelope, not an unknown event type.
        let run_id: RunId = self.run_id.parse().map_err(|e: uuid::Error| {
            corrupt(DecodeError::Envelope(serde::de::Error::custom(format!(
                "run_id {:?}: {e}",
                self.run_id
            ))))
        })?;
        let event_type: EventType = self.event_type.parse().map_err(&corrupt)?;
        let event = Event::decode(event_type, self.payload).map_err(&corrupt)?;
        Ok(EventRecord {
            seq,
            run_id,
            version: Version(self.version as u64),
            ts_ms: self.ts_ms,
            schema: self.schema as u32,
            event,
        })
    }
}
