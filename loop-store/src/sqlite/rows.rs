//! Rows to domain values and back: the events table and the `runs` snapshots.
//!
//! A run's row is a snapshot of its view, searched by its columns (`status`, `name`,
//! `run_branch`, `created_ms`, `workspace_root`), which are always current; the view inside
//! may lag the run by fewer than [`SNAPSHOT_EVERY`] events, folded in when it is read. Steps
//! have no rows: they are folded from their run's events when asked for.

use std::path::Path;

use loop_core::projection::{RunView, StepView};
use loop_core::{EventRecord, RunId, StepId, Version};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::StoreError;
use crate::record::Columns;
use crate::sqlite::schema::error_at;

/// A run's stored row is rewritten at least every this many of its events, so bringing it up
/// to date on read folds fewer than this many.
pub(crate) const SNAPSHOT_EVERY: u64 = 32;

pub(crate) const SELECT_EVENTS: &str =
    "SELECT seq, run_id, version, type, ts_ms, schema, payload FROM events";

/// Decodes the events row under the cursor (the columns of [`SELECT_EVENTS`]), borrowing its
/// text rather than copying it, so a decode error can still name the row.
pub(crate) fn decode_row(row: &Row<'_>, path: &Path) -> Result<EventRecord, StoreError> {
    let sql = |source| error_at(path, "read events")(source);
    let text = |i| row.get_ref(i).and_then(|v| Ok(v.as_str()?)).map_err(sql);
    Columns {
        seq: row.get(0).map_err(sql)?,
        run_id: text(1)?,
        version: row.get(2).map_err(sql)?,
        event_type: text(3)?,
        ts_ms: row.get(4).map_err(sql)?,
        schema: row.get(5).map_err(sql)?,
        payload: text(6)?,
    }
    .decode(path)
}

/// Reads and decodes events matching `filter` (a `WHERE …` suffix) with its parameters.
pub(crate) fn query_events(
    conn: &Connection,
    path: &Path,
    filter: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<EventRecord>, StoreError> {
    let mut records = Vec::new();
    for_each_event(conn, path, filter, params, |record| {
        records.push(record);
        Ok(())
    })?;
    Ok(records)
}

/// Reads and decodes events matching `filter`, handing each to `each` as it is decoded.
pub(crate) fn for_each_event(
    conn: &Connection,
    path: &Path,
    filter: &str,
    params: impl rusqlite::Params,
    mut each: impl FnMut(EventRecord) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let sql = format!("{SELECT_EVENTS} {filter}");
    let mut stmt = conn
        .prepare_cached(&sql)
        .map_err(error_at(path, "prepare an event query"))?;
    let mut rows = stmt.query(params).map_err(error_at(path, "read events"))?;
    while let Some(row) = rows.next().map_err(error_at(path, "read events"))? {
        each(decode_row(row, path)?)?;
    }
    Ok(())
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

/// The stored snapshot of one run's view, not brought up to date.
fn load_snapshot(
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

/// Brings a run's stored snapshot up to date with the run's events after it: at most
/// [`SNAPSHOT_EVERY`] of them, found by the `(run_id, version)` index.
pub(crate) fn catch_up(
    conn: &Connection,
    path: &Path,
    view: &mut RunView,
) -> Result<(), StoreError> {
    for_each_event(
        conn,
        path,
        "WHERE run_id = ?1 AND version > ?2 ORDER BY version",
        params![view.id.to_string(), view.version.0 as i64],
        |record| {
            view.apply(&record);
            Ok(())
        },
    )
}

/// A run's view: its stored snapshot brought up to date. `None` when the run has no row.
pub(crate) fn load_run(
    conn: &Connection,
    path: &Path,
    run_id: RunId,
) -> Result<Option<RunView>, StoreError> {
    let Some(mut view) = load_snapshot(conn, path, run_id)? else {
        return Ok(None);
    };
    catch_up(conn, path, &mut view)?;
    Ok(Some(view))
}

/// What the writer needs to know of a run's stored row to tell whether to rewrite it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RowKeys {
    pub(crate) version: Version,
    pub(crate) status: String,
    pub(crate) name: String,
    pub(crate) run_branch: Option<String>,
}

impl RowKeys {
    /// The keys of the row [`upsert_run`] writes for `view`.
    pub(crate) fn of(view: &RunView) -> RowKeys {
        RowKeys {
            version: view.version,
            status: view.status.as_str().to_owned(),
            name: view.name.clone(),
            run_branch: view.worktree.run_branch.clone(),
        }
    }

    /// What the row needs to stay true to `view`: all of it when a search by its columns
    /// would no longer find the run correctly; only the snapshot when it lags `view` by so
    /// many events that reading it would cost more than writing it.
    pub(crate) fn write_for(&self, view: &RunView) -> RowWrite {
        if self.status != view.status.as_str()
            || self.name != view.name
            || self.run_branch != view.worktree.run_branch
        {
            RowWrite::Whole
        } else if view.version.0 >= self.version.0 + SNAPSHOT_EVERY
            || view.version.0 < self.version.0
        {
            RowWrite::Snapshot
        } else {
            RowWrite::Keep
        }
    }
}

/// How much of a run's row an append rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RowWrite {
    Keep,
    /// The view and the columns that change with every event, none of them indexed: SQLite
    /// then leaves the row's index entries alone.
    Snapshot,
    /// Insert or rewrite every column ([`upsert_run`]).
    Whole,
}

/// Rewrites the snapshot of a run whose searched columns are unchanged; writes the whole row
/// should it be missing after all.
pub(crate) fn update_snapshot(tx: &Connection, view: &RunView) -> rusqlite::Result<()> {
    let updated = tx
        .prepare_cached(
            "UPDATE runs SET updated_ms = ?2, version = ?3, last_seq = ?4, view = ?5
         WHERE run_id = ?1",
        )?
        .execute(params![
            view.id.to_string(),
            view.updated_ms,
            view.version.0 as i64,
            view.last_seq.0 as i64,
            to_json(view),
        ])?;
    if updated == 0 {
        upsert_run(tx, view)?;
    }
    Ok(())
}

pub(crate) fn row_keys(conn: &Connection, run_id: RunId) -> rusqlite::Result<Option<RowKeys>> {
    conn.prepare_cached("SELECT version, status, name, run_branch FROM runs WHERE run_id = ?1")?
        .query_row([run_id.to_string()], |row| {
            Ok(RowKeys {
                version: Version(row.get::<_, i64>(0)? as u64),
                status: row.get(1)?,
                name: row.get(2)?,
                run_branch: row.get(3)?,
            })
        })
        .optional()
}

/// The run that started the step with this id, if any (the index over `STEP_STARTED` events).
pub(crate) fn step_owner(conn: &Connection, step_id: StepId) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached(
        "SELECT run_id FROM events
         WHERE type = 'STEP_STARTED' AND json_extract(payload, '$.step_id') = ?1 LIMIT 1",
    )?
    .query_row([step_id.to_string()], |row| row.get(0))
    .optional()
}

/// Runs matching `filter`, each brought up to date with its later events.
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
    let mut rows = stmt.query(params).map_err(error_at(path, "read runs"))?;
    let mut views = Vec::new();
    while let Some(row) = rows.next().map_err(error_at(path, "read runs"))? {
        let run_id = row.get_ref(0).and_then(|v| Ok(v.as_str()?));
        let text = row.get_ref(1).and_then(|v| Ok(v.as_str()?));
        let (run_id, text) = run_id
            .and_then(|id| Ok((id, text?)))
            .map_err(error_at(path, "read runs"))?;
        let mut view: RunView = parse_view(path, || format!("run {run_id}"), text)?;
        catch_up(conn, path, &mut view)?;
        views.push(view);
    }
    Ok(views)
}

/// A run's steps, folded from its events in the order they started.
pub(crate) fn load_steps(
    conn: &Connection,
    path: &Path,
    run_id: RunId,
) -> Result<Vec<StepView>, StoreError> {
    let events = query_events(
        conn,
        path,
        "WHERE run_id = ?1 ORDER BY version",
        [run_id.to_string()],
    )?;
    Ok(StepView::fold(&events))
}
