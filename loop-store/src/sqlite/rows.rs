//! Rows to domain values and back: the events table and the projection tables.

use std::path::Path;

use loop_core::event::DecodeError;
use loop_core::projection::{RunView, StepView};
use loop_core::{Event, EventRecord, EventType, RunId, Seq, StepId, Version};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::StoreError;
use crate::sqlite::schema::error_at;

pub(crate) const SELECT_EVENTS: &str =
    "SELECT seq, run_id, version, type, ts_ms, schema, payload FROM events";

/// The columns of an events row, before decoding, so a decode error can name the row.
pub(crate) struct RawEvent {
    seq: i64,
    run_id: String,
    version: i64,
    event_type: String,
    ts_ms: i64,
    schema: i64,
    payload: String,
}

impl RawEvent {
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<RawEvent> {
        Ok(RawEvent {
            seq: row.get(0)?,
            run_id: row.get(1)?,
            version: row.get(2)?,
            event_type: row.get(3)?,
            ts_ms: row.get(4)?,
            schema: row.get(5)?,
            payload: row.get(6)?,
        })
    }

    pub(crate) fn decode(self, path: &Path) -> Result<EventRecord, StoreError> {
        let seq = Seq(self.seq as u64);
        let corrupt = |source| StoreError::Corrupt {
            path: path.to_owned(),
            seq,
            run_id: self.run_id.clone(),
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
        let event = Event::decode(event_type, &self.payload).map_err(&corrupt)?;
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

/// Reads and decodes events matching `filter` (a `WHERE …` suffix) with its parameters.
pub(crate) fn query_events(
    conn: &Connection,
    path: &Path,
    filter: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<EventRecord>, StoreError> {
    let sql = format!("{SELECT_EVENTS} {filter}");
    let mut stmt = conn
        .prepare_cached(&sql)
        .map_err(error_at(path, "prepare an event query"))?;
    let rows = stmt
        .query_map(params, RawEvent::from_row)
        .map_err(error_at(path, "read events"))?;
    let mut records = Vec::new();
    for row in rows {
        records.push(row.map_err(error_at(path, "read events"))?.decode(path)?);
    }
    Ok(records)
}

pub(crate) fn insert_event(tx: &Connection, record: &EventRecord) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO events (seq, run_id, version, type, ts_ms, schema, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    stmt.execute(params![
        record.seq.0 as i64,
        record.run_id.to_string(),
        record.version.0 as i64,
        record.event.event_type().as_str(),
        record.ts_ms,
        record.schema,
        record.event.payload_json(),
    ])?;
    Ok(())
}

pub(crate) fn run_version(tx: &Connection, run_id: RunId) -> rusqlite::Result<Version> {
    let version: Option<i64> = tx
        .prepare_cached("SELECT max(version) FROM events WHERE run_id = ?1")?
        .query_row([run_id.to_string()], |row| row.get(0))?;
    Ok(Version(version.unwrap_or(0) as u64))
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("projection views always serialize")
}

pub(crate) fn upsert_run(tx: &Connection, view: &RunView) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO runs (run_id, status, workspace_root, name, created_ms, updated_ms, version, last_seq, view, run_branch)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (run_id) DO UPDATE SET status = ?2, name = ?4, updated_ms = ?6, version = ?7,
             last_seq = ?8, view = ?9, run_branch = ?10",
    )?
    .execute(params![
        view.id.to_string(),
        view.status.as_str(),
        view.workspace_root,
        view.name,
        view.created_ms,
        view.updated_ms,
        view.version.0 as i64,
        view.last_seq.0 as i64,
        to_json(view),
        view.worktree.run_branch,
    ])?;
    Ok(())
}

pub(crate) fn upsert_step(
    tx: &Connection,
    view: &StepView,
    started_seq: Seq,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO steps (step_id, run_id, started_seq, view) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (step_id) DO UPDATE SET view = ?4",
    )?
    .execute(params![
        view.id.to_string(),
        view.run_id.to_string(),
        started_seq.0 as i64,
        to_json(view),
    ])?;
    Ok(())
}

fn parse_view<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: impl FnOnce() -> String,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::CorruptProjection {
        path: path.to_owned(),
        what: what(),
        source,
    })
}

pub(crate) fn load_run(
    conn: &Connection,
    path: &Path,
    run_id: RunId,
) -> Result<Option<RunView>, StoreError> {
    let text: Option<String> = conn
        .prepare_cached("SELECT view FROM runs WHERE run_id = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([run_id.to_string()], |row| row.get(0))
                .optional()
        })
        .map_err(error_at(path, "read a run"))?;
    text.map(|text: String| parse_view(path, || format!("run {run_id}"), &text))
        .transpose()
}

/// The run whose step row has this id, if any.
pub(crate) fn step_owner(conn: &Connection, step_id: StepId) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT run_id FROM steps WHERE step_id = ?1")?
        .query_row([step_id.to_string()], |row| row.get(0))
        .optional()
}

pub(crate) fn load_step(
    conn: &Connection,
    path: &Path,
    step_id: StepId,
) -> Result<Option<StepView>, StoreError> {
    let text: Option<String> = conn
        .prepare_cached("SELECT view FROM steps WHERE step_id = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([step_id.to_string()], |row| row.get(0))
                .optional()
        })
        .map_err(error_at(path, "read a step"))?;
    text.map(|text: String| parse_view(path, || format!("step {step_id}"), &text))
        .transpose()
}

pub(crate) fn load_runs(
    conn: &Connection,
    path: &Path,
    filter: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<RunView>, StoreError> {
    let sql = format!("SELECT run_id, view FROM runs {filter}");
    let mut stmt = conn
        .prepare_cached(&sql)
        .map_err(error_at(path, "prepare a run query"))?;
    let rows = stmt
        .query_map(params, |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(error_at(path, "read runs"))?;
    let mut views = Vec::new();
    for row in rows {
        let (run_id, text) = row.map_err(error_at(path, "read runs"))?;
        views.push(parse_view(path, || format!("run {run_id}"), &text)?);
    }
    Ok(views)
}

pub(crate) fn load_steps(
    conn: &Connection,
    path: &Path,
    run_id: RunId,
) -> Result<Vec<StepView>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT step_id, view FROM steps WHERE run_id = ?1 ORDER BY started_seq")
        .map_err(error_at(path, "prepare a step query"))?;
    let rows = stmt
        .query_map([run_id.to_string()], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(error_at(path, "read steps"))?;
    let mut views = Vec::new();
    for row in rows {
        let (step_id, text) = row.map_err(error_at(path, "read steps"))?;
        views.push(parse_view(path, || format!("step {step_id}"), &text)?);
    }
    Ok(views)
}
