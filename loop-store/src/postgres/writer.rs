//! Appends and the projection rebuild: the only writes to the log, each in one transaction
//! that holds [`APPEND_LOCK`] so that seq order is commit order.

use std::path::Path;
use std::sync::Arc;

use loop_core::projection::RunView;
use loop_core::{Event, EventRecord, RunId, Seq, Version};
use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;

use crate::append::{self, Proposed};
use crate::error::StoreError;
use crate::postgres::Inner;
use crate::postgres::rows::*;
use crate::postgres::schema::{APPEND_LOCK, pg_error};
use crate::store::RebuildStats;

/// The channel commits are announced on.
pub(crate) const CHANNEL: &str = "loop_events";
const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock($1)";
/// Under the lock: the run's version, its stored view, and the log's last seq.
const STATE_SQL: &str = "SELECT (SELECT coalesce(max(version), 0) FROM events WHERE run_id = $1),
            (SELECT view FROM runs WHERE run_id = $1),
            (SELECT coalesce(max(seq), 0) FROM events)";
const STEP_OWNERS_SQL: &str = "SELECT step_id, run_id FROM steps_started WHERE step_id = ANY($1)";
/// Every event of an append in one statement.
const INSERT_EVENTS_SQL: &str =
    "INSERT INTO events (seq, run_id, version, type, ts_ms, schema, payload)
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::bigint[],
                          $6::integer[], $7::text[])";
const INSERT_STEPS_SQL: &str =
    "INSERT INTO steps_started (step_id, run_id) SELECT unnest($1::text[]), $2";
const UPSERT_RUN_SQL: &str = "INSERT INTO runs (run_id, status, workspace_root, name, created_ms,
         updated_ms, version, last_seq, view, run_branch)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     ON CONFLICT (run_id) DO UPDATE SET status = $2, name = $4, updated_ms = $6,
         version = $7, last_seq = $8, view = $9, run_branch = $10";
const NOTIFY_SQL: &str = "SELECT pg_notify($1, $2)";

impl Inner {
    /// Appends one run's events in a transaction of their own (see `append::fold` for what is
    /// refused).
    pub(super) async fn append(
        self: Arc<Self>,
        proposed: Proposed,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let at = self.link.at.clone();
        let sql = |action| pg_error(&at, action);
        let run_id = proposed.run_id;
        let mut conn = self.link.conn(&self.writer).await?;
        let lock = conn.statement(LOCK_SQL, &at).await?;
        let state = conn.statement(STATE_SQL, &at).await?;
        let owners = conn.statement(STEP_OWNERS_SQL, &at).await?;
        let insert_events = conn.statement(INSERT_EVENTS_SQL, &at).await?;
        let insert_steps = conn.statement(INSERT_STEPS_SQL, &at).await?;
        let upsert = conn.statement(UPSERT_RUN_SQL, &at).await?;
        let notify = conn.statement(NOTIFY_SQL, &at).await?;
        let tx = conn
            .client
            .transaction()
            .await
            .map_err(sql("begin an append"))?;
        let id = run_id.to_string();
        // Sent together (tokio-postgres pipelines what is awaited at once), run in order: the
        // state is read holding the lock.
        let (lock_params, state_params): ([&(dyn ToSql + Sync); 1], [&(dyn ToSql + Sync); 1]) =
            ([&APPEND_LOCK], [&id]);
        let (_, row) = tokio::try_join!(
            tx.execute(&lock, &lock_params),
            tx.query_one(&state, &state_params),
        )
        .map_err(sql("read a run under the append lock"))?;
        let actual = Version(row.get::<_, i64>(0) as u64);
        let stored: Option<&str> = row.get(1);
        let first = Seq(row.get::<_, i64>(2) as u64 + 1);
        let view = match (actual, stored) {
            // A new run, or a stale version that `fold` refuses whatever the view.
            _ if actual == Version::NONE || actual != proposed.expected => None,
            (_, Some(text)) => Some(parse_view(&at, &id, text)?),
            // The row is gone (dropped by hand): refold it from the run's events.
            (_, None) => {
                let earlier = query_events(
                    &tx,
                    &at,
                    &format!("{SELECT_EVENTS} WHERE run_id = $1 ORDER BY version"),
                    &[&id],
                )
                .await?;
                RunView::fold(&earlier)
            }
        };
        let append::Folded {
            records,
            view,
            started,
        } = append::fold(proposed, actual, view, first)?;
        let started: Vec<String> = started.iter().map(ToString::to_string).collect();
        if !started.is_empty() {
            let taken = tx
                .query(&owners, &[&started])
                .await
                .map_err(sql("read a step"))?;
            if let Some(row) = taken.first() {
                return Err(append::already_started(
                    run_id,
                    row.get::<_, &str>(0),
                    row.get(1),
                ));
            }
        }
        let column = |f: fn(&EventRecord) -> i64| records.iter().map(f).collect::<Vec<i64>>();
        let seqs = column(|r| r.seq.0 as i64);
        let versions = column(|r| r.version.0 as i64);
        let times = column(|r| r.ts_ms);
        let ids = vec![id.clone(); records.len()];
        let types: Vec<&str> = records
            .iter()
            .map(|r| r.event.event_type().as_str())
            .collect();
        let schemas: Vec<i32> = records.iter().map(|r| r.schema as i32).collect();
        let payloads: Vec<String> = records.iter().map(|r| r.event.payload_json()).collect();
        let text = serde_json::to_string(&view).expect("projection views always serialize");
        let last = records.last().map_or(0, |r| r.seq.0).to_string();
        let run_params: [&(dyn ToSql + Sync); 10] = [
            &id,
            &view.status.as_str(),
            &view.workspace_root,
            &view.name,
            &view.created_ms,
            &view.updated_ms,
            &(view.version.0 as i64),
            &(view.last_seq.0 as i64),
            &text,
            &view.worktree.run_branch,
        ];
        // One flight: the events, the step index, the run's row, the announcement.
        let steps = async {
            if started.is_empty() {
                Ok(0)
            } else {
                tx.execute(&insert_steps, &[&started, &id]).await
            }
        };
        let event_params: [&(dyn ToSql + Sync); 7] =
            [&seqs, &ids, &versions, &types, &times, &schemas, &payloads];
        let notify_params: [&(dyn ToSql + Sync); 2] = [&CHANNEL, &last];
        tokio::try_join!(
            tx.execute(&insert_events, &event_params),
            steps,
            tx.execute(&upsert, &run_params),
            tx.execute(&notify, &notify_params),
        )
        .map_err(sql("append"))?;
        tx.commit().await.map_err(|source| StoreError::Write {
            path: at.clone(),
            reason: source.to_string(),
        })?;
        drop(conn);
        self.subscribers.publish(records.clone().into());
        Ok(records)
    }

    pub(super) async fn rebuild(self: Arc<Self>) -> Result<RebuildStats, StoreError> {
        let at = self.link.at.clone();
        let sql = |action| pg_error(&at, action);
        let mut conn = self.link.conn(&self.writer).await?;
        let upsert = conn.statement(UPSERT_RUN_SQL, &at).await?;
        let tx = conn
            .client
            .transaction()
            .await
            .map_err(sql("begin a rebuild"))?;
        tx.execute(LOCK_SQL, &[&APPEND_LOCK])
            .await
            .map_err(sql("take the append lock"))?;
        // The step index from the log in one statement: each step id to the run that started
        // it first.
        tx.batch_execute(
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
        let mut runs: std::collections::HashMap<RunId, RunView> = std::collections::HashMap::new();
        let mut after = Seq(0);
        loop {
            let page =
                query_events(&tx, &at, READ_AFTER_SQL, &[&seq_param(after), &(16 * PAGE)]).await?;
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
        for view in runs.values() {
            upsert_run(&tx, &at, &upsert, view).await?;
            stats.runs += 1;
        }
        tx.commit().await.map_err(sql("commit the rebuild"))?;
        Ok(stats)
    }
}

async fn upsert_run(
    tx: &tokio_postgres::Transaction<'_>,
    at: &Path,
    upsert: &Statement,
    view: &RunView,
) -> Result<(), StoreError> {
    let text = serde_json::to_string(view).expect("projection views always serialize");
    tx.execute(
        upsert,
        &[
            &view.id.to_string(),
            &view.status.as_str(),
            &view.workspace_root,
            &view.name,
            &view.created_ms,
            &view.updated_ms,
            &(view.version.0 as i64),
            &(view.last_seq.0 as i64),
            &text,
            &view.worktree.run_branch,
        ],
    )
    .await
    .map_err(pg_error(at, "write a run"))?;
    Ok(())
}
