//! Rebuilding the projections of a PostgreSQL log: every run's row and the step-id index made
//! again from the events, in one transaction under the append lock.
//!
//! The log is folded here, in Rust, and compared with what is stored: only the rows that differ
//! from the fold are deleted or written. A rebuild of a sound log writes nothing, and one after a
//! lost or damaged index writes what was lost. Refilling the index in SQL instead (parse every
//! `STEP_STARTED` payload, sort 420k step ids, insert them all) was 11–15 s of a 27 s rebuild of
//! 1M events (BENCHMARKS.md), where folding the same ids here costs a hash insert each.
//!
//! The events come in one streamed query: the server scans and sends the next rows while the
//! current ones are decoded and folded (the driver reads ahead into the socket's buffers), where
//! pages of `seq > $1 LIMIT n` would leave it idle for a round trip and a decode every page.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use futures_util::TryStreamExt;
use loop_core::projection::RunView;
use loop_core::{Event, RunId, StepId};
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use crate::error::StoreError;
use crate::postgres::rows::{Conn, RunRow, RunRows, SELECT_EVENTS, UPSERT_RUNS_SQL, decode};
use crate::postgres::schema::{APPEND_LOCK, LOCK_SQL, pg_error};
use crate::store::RebuildStats;

/// Rows written per statement when many differ (an index lost as a whole).
const ROWS_PER_STATEMENT: usize = 8192;

const EVENTS_SQL: &str = "ORDER BY seq";
const STORED_STEPS_SQL: &str = "SELECT step_id, run_id FROM steps_started";
const DELETE_STEPS_SQL: &str = "DELETE FROM steps_started WHERE step_id = ANY($1::text[])";
const INSERT_STEPS_SQL: &str = "INSERT INTO steps_started (step_id, run_id)
     SELECT * FROM unnest($1::text[], $2::text[])";
const STORED_RUNS_SQL: &str = "SELECT run_id, status, workspace_root, name, created_ms,
     updated_ms, version, last_seq, view, run_branch FROM runs";
const DELETE_RUNS_SQL: &str = "DELETE FROM runs WHERE run_id = ANY($1::text[])";

/// The log folded: each run's view, and each step id with the run that started it first.
#[derive(Default)]
struct Folded {
    runs: HashMap<RunId, RunView>,
    steps: HashMap<StepId, RunId>,
}

pub(crate) async fn rebuild(conn: &mut Conn, at: &Path) -> Result<RebuildStats, StoreError> {
    let sql = |action| pg_error(at, action);
    let lock = conn.statement(LOCK_SQL, at).await?;
    let events = conn
        .statement(&format!("{SELECT_EVENTS} {EVENTS_SQL}"), at)
        .await?;
    let client = &conn.client;
    client
        .batch_execute("BEGIN")
        .await
        .map_err(sql("begin a rebuild"))?;
    let result = async {
        client
            .execute(&lock, &[&APPEND_LOCK])
            .await
            .map_err(sql("take the append lock"))?;
        let mut stats = RebuildStats::default();
        let mut folded = Folded::default();
        let rows = client
            .query_raw(&events, std::iter::empty::<&(dyn ToSql + Sync)>())
            .await
            .map_err(sql("read events"))?;
        let mut rows = std::pin::pin!(rows);
        while let Some(row) = rows.try_next().await.map_err(sql("read events"))? {
            let record = decode(&row, at)?;
            stats.events += 1;
            if let Event::StepStarted(started) = &record.event {
                stats.steps += 1;
                folded.steps.entry(started.step_id).or_insert(record.run_id);
            }
            match folded.runs.get_mut(&record.run_id) {
                Some(view) => view.apply(&record),
                None => {
                    if let Some(view) = RunView::created(&record) {
                        folded.runs.insert(record.run_id, view);
                    }
                }
            }
        }
        stats.runs = folded.runs.len() as u64;
        mend_steps(client, at, folded.steps).await?;
        mend_runs(client, at, &folded.runs).await?;
        client
            .batch_execute("COMMIT")
            .await
            .map_err(sql("commit the rebuild"))?;
        Ok(stats)
    }
    .await;
    if result.is_err() && !client.is_closed() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    result
}

/// Makes `steps_started` exactly `folded`: deletes the rows that are not in it (or name another
/// run, or a step id in another spelling), inserts the ones missing.
async fn mend_steps(
    client: &Client,
    at: &Path,
    mut missing: HashMap<StepId, RunId>,
) -> Result<(), StoreError> {
    let sql = |action| pg_error(at, action);
    let stored = client
        .query_raw(STORED_STEPS_SQL, std::iter::empty::<&(dyn ToSql + Sync)>())
        .await
        .map_err(sql("read the step index"))?;
    let mut stored = std::pin::pin!(stored);
    let mut stale: Vec<String> = Vec::new();
    let mut spelled = String::new();
    while let Some(row) = stored
        .try_next()
        .await
        .map_err(sql("read the step index"))?
    {
        let (step, run): (&str, &str) = (row.get(0), row.get(1));
        let held = step.parse::<StepId>().ok().filter(|id| {
            spelled.clear();
            let _ = write!(spelled, "{id}");
            spelled == step
        });
        let kept = held.is_some_and(|id| {
            missing
                .get(&id)
                .is_some_and(|owner| run.parse::<RunId>().is_ok_and(|r| r == *owner))
        });
        match held {
            Some(id) if kept => {
                missing.remove(&id);
            }
            _ => stale.push(step.to_owned()),
        }
    }
    if !stale.is_empty() {
        client
            .execute(DELETE_STEPS_SQL, &[&stale])
            .await
            .map_err(sql("delete stale step ids"))?;
    }
    let mut missing: Vec<(StepId, RunId)> = missing.into_iter().collect();
    // In key order: the index's pages fill in order rather than at random.
    missing.sort_unstable();
    for chunk in missing.chunks(ROWS_PER_STATEMENT) {
        let ids: Vec<String> = chunk.iter().map(|(id, _)| id.to_string()).collect();
        let runs: Vec<String> = chunk.iter().map(|(_, run)| run.to_string()).collect();
        client
            .execute(INSERT_STEPS_SQL, &[&ids, &runs])
            .await
            .map_err(sql("index steps"))?;
    }
    Ok(())
}

/// Makes `runs` exactly one row per folded run, as an append would have written it: a row that
/// differs in any column is written again, a row of no run of the log is deleted.
async fn mend_runs(
    client: &Client,
    at: &Path,
    folded: &HashMap<RunId, RunView>,
) -> Result<(), StoreError> {
    let sql = |action| pg_error(at, action);
    let rows = client
        .query(STORED_RUNS_SQL, &[])
        .await
        .map_err(sql("read runs"))?;
    let mut stored: HashMap<String, RunRow> = rows
        .iter()
        .map(|row| (row.get::<_, String>(0), RunRow::from_row(row)))
        .collect();
    let mut rewrite: Vec<RunRow> = Vec::new();
    for view in folded.values() {
        let row = RunRow::of(view);
        if stored.remove(&row.id).as_ref() != Some(&row) {
            rewrite.push(row);
        }
    }
    // Rows to write go first (a changed row is deleted and inserted, so that every column,
    // including the ones an append never changes, comes from the fold), then rows of no run.
    let delete: Vec<String> = rewrite
        .iter()
        .map(|row| row.id.clone())
        .chain(stored.into_keys())
        .collect();
    if !delete.is_empty() {
        client
            .execute(DELETE_RUNS_SQL, &[&delete])
            .await
            .map_err(sql("delete stale runs"))?;
    }
    for chunk in rewrite.chunks(ROWS_PER_STATEMENT / 8) {
        let mut rows = RunRows::default();
        for row in chunk {
            rows.push_row(row.clone());
        }
        client
            .execute(UPSERT_RUNS_SQL, &rows.params())
            .await
            .map_err(sql("write runs"))?;
    }
    Ok(())
}
