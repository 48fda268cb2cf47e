//! Rows to domain values and back: the statements reads and appends use, events decoded from
//! their columns, run views from their stored JSON, and [`Conn`], a connection that prepares
//! each statement once.

use std::collections::HashMap;
use std::path::Path;

use loop_core::projection::RunView;
use loop_core::{EventRecord, Seq};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, Row, Statement, ToStatement};

use crate::error::StoreError;
use crate::postgres::schema::pg_error;
use crate::record::Columns;

/// Events read per catch-up query.
pub(crate) const PAGE: i64 = 1024;

/// The columns [`decode`] reads, in its order.
pub(crate) const SELECT_EVENTS: &str =
    "SELECT seq, run_id, version, type, ts_ms, schema, payload FROM events";
pub(crate) const READ_AFTER_SQL: &str =
    "SELECT seq, run_id, version, type, ts_ms, schema, payload FROM events
     WHERE seq > $1 ORDER BY seq LIMIT $2";
const LAST_SEQ_SQL: &str = "SELECT coalesce(max(seq), 0) FROM events";
/// A connection and the statements prepared on it. tokio-postgres prepares a query given as
/// text on every call, a round trip of its own; each text here is prepared once per connection.
pub(crate) struct Conn {
    pub(crate) client: Client,
    prepared: HashMap<String, Statement>,
}

impl Conn {
    pub(crate) fn new(client: Client) -> Conn {
        Conn {
            client,
            prepared: HashMap::new(),
        }
    }

    pub(crate) async fn statement(
        &mut self,
        sql: &str,
        at: &Path,
    ) -> Result<Statement, StoreError> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self
            .client
            .prepare(sql)
            .await
            .map_err(pg_error(at, "prepare a statement"))?;
        self.prepared.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    pub(crate) async fn events(
        &mut self,
        at: &Path,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<EventRecord>, StoreError> {
        let statement = self.statement(sql, at).await?;
        query_events(&self.client, at, &statement, params).await
    }

    pub(crate) async fn runs(
        &mut self,
        at: &Path,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<RunView>, StoreError> {
        let statement = self.statement(sql, at).await?;
        load_runs(&self.client, at, &statement, params).await
    }

    pub(crate) async fn read_after(
        &mut self,
        at: &Path,
        after: Seq,
        limit: i64,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.events(at, READ_AFTER_SQL, &[&seq_param(after), &limit])
            .await
    }

    pub(crate) async fn last_seq(&mut self, at: &Path) -> Result<Seq, StoreError> {
        let statement = self.statement(LAST_SEQ_SQL, at).await?;
        let row = self
            .client
            .query_one(&statement, &[])
            .await
            .map_err(pg_error(at, "read the last seq"))?;
        Ok(Seq(row.get::<_, i64>(0) as u64))
    }
}

pub(crate) fn seq_param(seq: Seq) -> i64 {
    i64::try_from(seq.0).unwrap_or(i64::MAX)
}

pub(crate) fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Events a query selects (the columns of [`SELECT_EVENTS`]), decoded.
pub(crate) async fn query_events<T: ?Sized + ToStatement + Sync + Send>(
    client: &impl GenericClient,
    at: &Path,
    statement: &T,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<EventRecord>, StoreError> {
    let rows = client
        .query(statement, params)
        .await
        .map_err(pg_error(at, "read events"))?;
    rows.iter().map(|row| decode(row, at)).collect()
}

pub(crate) fn decode(row: &Row, at: &Path) -> Result<EventRecord, StoreError> {
    Columns {
        seq: row.get(0),
        run_id: row.get(1),
        version: row.get(2),
        event_type: row.get(3),
        ts_ms: row.get(4),
        schema: i64::from(row.get::<_, i32>(5)),
        payload: row.get(6),
    }
    .decode(at)
}

pub(crate) fn parse_view(at: &Path, run_id: &str, text: &str) -> Result<RunView, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::CorruptProjection {
        path: at.to_owned(),
        what: format!("run {run_id}"),
        source,
    })
}

/// Runs a query selects (`run_id, view`).
pub(crate) async fn load_runs<T: ?Sized + ToStatement + Sync + Send>(
    client: &impl GenericClient,
    at: &Path,
    statement: &T,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<RunView>, StoreError> {
    let rows = client
        .query(statement, params)
        .await
        .map_err(pg_error(at, "read runs"))?;
    rows.iter()
        .map(|row| parse_view(at, row.get(0), row.get(1)))
        .collect()
}

/// Runs' rows (each run once) in one statement, from the arrays of [`RunRows`].
pub(crate) const UPSERT_RUNS_SQL: &str = "INSERT INTO runs (run_id, status, workspace_root, name,
         created_ms, updated_ms, version, last_seq, view, run_branch)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[],
                          $6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $10::text[])
     ON CONFLICT (run_id) DO UPDATE SET status = EXCLUDED.status, name = EXCLUDED.name,
         updated_ms = EXCLUDED.updated_ms, version = EXCLUDED.version,
         last_seq = EXCLUDED.last_seq, view = EXCLUDED.view, run_branch = EXCLUDED.run_branch";

/// One run's row as an append writes it, every column.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RunRow {
    pub(crate) id: String,
    status: String,
    workspace: String,
    name: String,
    created: i64,
    updated: i64,
    version: i64,
    last_seq: i64,
    view: String,
    branch: Option<String>,
}

impl RunRow {
    pub(crate) fn of(view: &RunView) -> RunRow {
        RunRow {
            id: view.id.to_string(),
            status: view.status.as_str().to_owned(),
            workspace: view.workspace_root.clone(),
            name: view.name.clone(),
            created: view.created_ms,
            updated: view.updated_ms,
            version: view.version.0 as i64,
            last_seq: view.last_seq.0 as i64,
            view: serde_json::to_string(view).expect("projection views always serialize"),
            branch: view.worktree.run_branch.clone(),
        }
    }

    /// A stored row, its columns in the order of `INSERT INTO runs` in [`UPSERT_RUNS_SQL`].
    pub(crate) fn from_row(row: &Row) -> RunRow {
        RunRow {
            id: row.get(0),
            status: row.get(1),
            workspace: row.get(2),
            name: row.get(3),
            created: row.get(4),
            updated: row.get(5),
            version: row.get(6),
            last_seq: row.get(7),
            view: row.get(8),
            branch: row.get(9),
        }
    }
}

/// Runs' rows as the arrays [`UPSERT_RUNS_SQL`] takes: many rows in one statement.
#[derive(Default)]
pub(crate) struct RunRows {
    ids: Vec<String>,
    statuses: Vec<String>,
    workspaces: Vec<String>,
    names: Vec<String>,
    created: Vec<i64>,
    updated: Vec<i64>,
    versions: Vec<i64>,
    last_seqs: Vec<i64>,
    views: Vec<String>,
    branches: Vec<Option<String>>,
}

impl RunRows {
    pub(crate) fn push(&mut self, view: &RunView) {
        self.push_row(RunRow::of(view));
    }

    pub(crate) fn push_row(&mut self, row: RunRow) {
        self.ids.push(row.id);
        self.statuses.push(row.status);
        self.workspaces.push(row.workspace);
        self.names.push(row.name);
        self.created.push(row.created);
        self.updated.push(row.updated);
        self.versions.push(row.version);
        self.last_seqs.push(row.last_seq);
        self.views.push(row.view);
        self.branches.push(row.branch);
    }

    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 10] {
        [
            &self.ids,
            &self.statuses,
            &self.workspaces,
            &self.names,
            &self.created,
            &self.updated,
            &self.versions,
            &self.last_seqs,
            &self.views,
            &self.branches,
        ]
    }
}
