//! Rebuilding the projections of a PostgreSQL log: every run's row and the step-id index
//! dropped and made again from the events, in one transaction under the append lock.
//!
//! The events are read in pages and folded here; the runs' rows go back in statements of many
//! rows each, not a round trip per run.

use std::collections::HashMap;
use std::path::Path;

use loop_core::projection::RunView;
use loop_core::{Event, RunId, Seq};

use crate::error::StoreError;
use crate::postgres::rows::{
    Conn, READ_AFTER_SQL, RunRows, UPSERT_RUNS_SQL, query_events, seq_param,
};
use crate::postgres::schema::{APPEND_LOCK, LOCK_SQL, pg_error};
use crate::store::RebuildStats;

/// Events read per page.
const PAGE: i64 = 16_384;
/// Runs' rows written per statement.
const RUNS_PER_STATEMENT: usize = 1024;

pub(crate) async fn rebuild(conn: &mut Conn, at: &Path) -> Result<RebuildStats, StoreError> {
    let sql = |action| pg_error(at, action);
    let lock = conn.statement(LOCK_SQL, at).await?;
    let read = conn.statement(READ_AFTER_SQL, at).await?;
    let upsert = conn.statement(UPSERT_RUNS_SQL, at).await?;
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
        // The step index from the log in one statement: each step id to the run that started
        // it first.
        client
            .batch_execute(
                "DELETE FROM runs; DELETE FROM steps_started;
                 INSERT INTO steps_started (step_id, run_id)
                 SELECT DISTINCT ON (step_id) step_id, run_id
                 FROM (SELECT payload::json->>'step_id' AS step_id, run_id, seq FROM events
                       WHERE type = 'STEP_STARTED') started
                 ORDER BY step_id, seq;",
            )
            .await
            .map_err(sql("clear the projections and index the steps"))?;
        let mut stats = RebuildStats::default();
        let mut runs: HashMap<RunId, RunView> = HashMap::new();
        let mut after = Seq(0);
        loop {
            let page = query_events(client, at, &read, &[&seq_param(after), &PAGE]).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for record in &page {
                stats.events += 1;
                if matches!(record.event, Event::StepStarted(_)) {
                    stats.steps += 1;
                }
                match runs.get_mut(&record.run_id) {
                    Some(view) => view.apply(record),
                    None => {
                        if let Some(view) = RunView::created(record) {
                            runs.insert(record.run_id, view);
                        }
                    }
                }
            }
        }
        let mut rows = RunRows::default();
        for view in runs.values() {
            rows.push(view);
            stats.runs += 1;
            if rows.len() == RUNS_PER_STATEMENT {
                client
                    .execute(&upsert, &rows.params())
                    .await
                    .map_err(sql("write runs"))?;
                rows = RunRows::default();
            }
        }
        if rows.len() > 0 {
            client
                .execute(&upsert, &rows.params())
                .await
                .map_err(sql("write runs"))?;
        }
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
