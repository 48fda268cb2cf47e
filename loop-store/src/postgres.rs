//! [`PgStore`]: the event log in a PostgreSQL database, shared by every `loopd` node of a
//! cluster.
//!
//! The same guarantees as the SQLite log ([`crate::EventStore`]), with writers on many machines:
//!
//! - **Seq order is commit order.** A sequence would hand out numbers in the order transactions
//!   start, and they may commit in another: a reader that saw seq 11 and resumed after it would
//!   never see a seq 10 that committed a moment later. So appends are serialised: each takes a
//!   transaction-scoped advisory lock ([`APPEND_LOCK`]) first and numbers its events from the
//!   log's last seq, under the lock. Whatever a reader sees is a gap-free prefix of the log, and
//!   resuming after any seq misses nothing (`specs/event-log.md`, "Cluster").
//! - **Expected versions fence writers.** An append names the version it expects the run to be
//!   at; under the lock that is checked against the log, so of two nodes that both believe they
//!   drive a run, the second to append is refused with [`StoreError::Conflict`].
//! - **Projections in the same transaction.** The run's row (its whole view, always current) and
//!   the step-id index are written with its events.
//! - **Subscriptions across nodes.** Each commit sends `NOTIFY loop_events`; every store has
//!   one connection listening, reads what committed after its cursor and hands it to its
//!   subscribers, and also reads once a second in case a notification was lost with a
//!   connection. A store's own appends reach its subscribers at once.
//!
//! The driver is `tokio-postgres` on a small runtime the store owns, so the store's blocking
//! methods may be called from any thread, async or not, as the SQLite store's may.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use loop_core::event::{DecodeError, SCHEMA};
use loop_core::projection::{RunView, StepView};
use loop_core::{Event, EventRecord, EventType, RunId, Seq, Version};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, NoTls, Row, Statement, ToStatement};

use crate::error::StoreError;
use crate::node::{NodeBeat, NodeSeen};
use crate::store::{EventStore, RebuildStats, RunQuery};
use crate::subscription::{ReadAfter, Subscribers, Subscription};

/// The advisory lock every append holds until it commits (an arbitrary constant: "loop").
pub const APPEND_LOCK: i64 = 0x6c6f_6f70;
/// The schema version this build writes; a database with a newer one is not touched.
pub const SCHEMA_VERSION: i64 = 1;
/// The channel commits are announced on.
const CHANNEL: &str = "loop_events";
/// Connections for reads.
const READERS: usize = 4;
/// How often the listener reads the log even without a notification.
const POLL: Duration = Duration::from_secs(1);
/// Events read per catch-up query.
const PAGE: i64 = 1024;

const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS loop_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq bigint PRIMARY KEY,
    run_id text NOT NULL,
    version bigint NOT NULL,
    type text NOT NULL,
    ts_ms bigint NOT NULL,
    schema integer NOT NULL,
    payload text NOT NULL,
    UNIQUE (run_id, version)
);
CREATE TABLE IF NOT EXISTS runs (
    run_id text PRIMARY KEY,
    status text NOT NULL,
    workspace_root text NOT NULL,
    name text NOT NULL,
    created_ms bigint NOT NULL,
    updated_ms bigint NOT NULL,
    version bigint NOT NULL,
    last_seq bigint NOT NULL,
    view text NOT NULL,
    run_branch text
);
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_ms DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, created_ms DESC);
CREATE INDEX IF NOT EXISTS runs_by_workspace ON runs (workspace_root, created_ms DESC);
CREATE INDEX IF NOT EXISTS runs_by_name ON runs (name);
CREATE INDEX IF NOT EXISTS runs_by_branch ON runs (run_branch);
CREATE TABLE IF NOT EXISTS steps_started (step_id text PRIMARY KEY, run_id text NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
    node_id text PRIMARY KEY,
    name text NOT NULL,
    address text NOT NULL,
    capacity integer NOT NULL,
    runs integer NOT NULL,
    lease_ms bigint NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    left_at timestamptz
);
";
/// A heartbeat: the node's row, stamped by the database's clock.
const BEAT_SQL: &str = "INSERT INTO nodes (node_id, name, address, capacity, runs, lease_ms)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (node_id) DO UPDATE SET name = $2, address = $3, capacity = $4, runs = $5,
         lease_ms = $6,
         heartbeat_at = now(), left_at = NULL,
         started_at = CASE WHEN nodes.left_at IS NULL THEN nodes.started_at ELSE now() END";
const LEAVE_SQL: &str = "UPDATE nodes SET left_at = now() WHERE node_id = $1";
const NODES_SQL: &str = "SELECT node_id, name, address, capacity, runs, lease_ms,
         (extract(epoch FROM started_at) * 1000)::bigint,
         (extract(epoch FROM heartbeat_at) * 1000)::bigint,
         greatest(0, (extract(epoch FROM now() - heartbeat_at) * 1000))::bigint,
         left_at IS NOT NULL
     FROM nodes ORDER BY heartbeat_at DESC";

const SELECT_EVENTS: &str = "SELECT seq, run_id, version, type, ts_ms, schema, payload FROM events";
const READ_AFTER_SQL: &str = "SELECT seq, run_id, version, type, ts_ms, schema, payload FROM events
     WHERE seq > $1 ORDER BY seq LIMIT $2";
const LAST_SEQ_SQL: &str = "SELECT coalesce(max(seq), 0) FROM events";
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

/// The event log in a PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("at", &self.inner.at)
            .finish_non_exhaustive()
    }
}

/// A connection and the statements prepared on it. tokio-postgres prepares a query given as
/// text on every call, a round trip of its own; each text here is prepared once per connection.
struct Conn {
    client: Client,
    prepared: std::collections::HashMap<String, Statement>,
}

impl Conn {
    fn new(client: Client) -> Conn {
        Conn {
            client,
            prepared: std::collections::HashMap::new(),
        }
    }

    async fn statement(&mut self, sql: &str, at: &Path) -> Result<Statement, StoreError> {
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

    async fn events(
        &mut self,
        at: &Path,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<EventRecord>, StoreError> {
        let statement = self.statement(sql, at).await?;
        query_events(&self.client, at, &statement, params).await
    }

    async fn runs(
        &mut self,
        at: &Path,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<RunView>, StoreError> {
        let statement = self.statement(sql, at).await?;
        load_runs(&self.client, at, &statement, params).await
    }

    async fn read_after(
        &mut self,
        at: &Path,
        after: Seq,
        limit: i64,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.events(at, READ_AFTER_SQL, &[&seq_param(after), &limit])
            .await
    }

    async fn last_seq(&mut self, at: &Path) -> Result<Seq, StoreError> {
        let statement = self.statement(LAST_SEQ_SQL, at).await?;
        let row = self
            .client
            .query_one(&statement, &[])
            .await
            .map_err(pg_error(at, "read the last seq"))?;
        Ok(Seq(row.get::<_, i64>(0) as u64))
    }
}

struct Inner {
    /// Where the database is, without a password, for messages.
    at: PathBuf,
    /// Taken only when the store is dropped (see `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
    writer: tokio::sync::Mutex<Conn>,
    readers: Vec<tokio::sync::Mutex<Conn>>,
    next_reader: AtomicUsize,
    subscribers: Arc<Subscribers>,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`, or a key=value
    /// string), creating loop's tables when they are missing.
    ///
    /// Fails with [`StoreError::NewerSchema`] for a database written by a newer build, which is
    /// not modified.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        let at = PathBuf::from(redact(url));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("loop-store-pg")
            .enable_all()
            .build()
            .map_err(|source| StoreError::Io {
                path: at.clone(),
                action: "start the PostgreSQL driver",
                source,
            })?;
        let subscribers = Arc::new(Subscribers::default());
        // Not `block_on`: the caller may itself be a task of another runtime (loopd's start).
        let connecting = url.to_owned();
        let connected = block(&runtime, {
            let (url, at) = (connecting, at.clone());
            async move {
                let url = url.as_str();
                let mut writer = Conn::new(connect(url, &at).await?);
                migrate(&writer.client, &at).await?;
                let cursor = writer.last_seq(&at).await?;
                let mut readers = Vec::with_capacity(READERS);
                for _ in 0..READERS {
                    let reader = Conn::new(connect(url, &at).await?);
                    readers.push(tokio::sync::Mutex::new(reader));
                }
                Ok::<_, StoreError>((writer, readers, cursor))
            }
        });
        let (writer, readers, cursor) = match connected {
            Ok(connected) => connected,
            Err(error) => {
                // Dropped here, the driver's runtime would wait for its threads, which a caller
                // that is itself an async task may not do (tokio panics).
                runtime.shutdown_background();
                return Err(error);
            }
        };
        let inner = Arc::new(Inner {
            at,
            runtime: Some(runtime),
            writer: tokio::sync::Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            subscribers,
        });
        let listening = listen(url.to_owned(), Arc::downgrade(&inner), cursor);
        inner.runtime().spawn(listening);
        Ok(PgStore { inner })
    }

    /// How many subscriptions are live.
    pub fn subscriber_count(&self) -> usize {
        self.inner.subscribers.count()
    }

    /// Runs `work` on the store's runtime and waits for it: callable from any thread.
    fn call<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        block(self.inner.runtime(), work)
    }
}

fn block<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    let (reply, answer) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = reply.send(work.await);
    });
    answer.recv().map_err(|_| StoreError::Closed)?
}

/// A connection string without its password: the one in a URL's user info (up to the last `@`
/// of the authority, since a password may hold an `@`), and any `password=` value (a URL's
/// query, or the key=value form).
pub(crate) fn redact(url: &str) -> String {
    let mut shown = url.to_owned();
    if let Some(scheme) = url.find("://") {
        let start = scheme + 3;
        let authority_end = url[start..]
            .find(['/', '?'])
            .map_or(url.len(), |i| start + i);
        if let Some(at) = url[start..authority_end].rfind('@').map(|i| start + i)
            && let Some(colon) = url[start..at].find(':').map(|i| start + i)
        {
            shown = format!("{}***{}", &url[..=colon], &url[at..]);
        }
    }
    let mut out = String::with_capacity(shown.len());
    let mut rest = shown.as_str();
    while let Some(found) = rest.find("password=") {
        let value = found + "password=".len();
        out.push_str(&rest[..value]);
        out.push_str("***");
        let end = rest[value..]
            .find(|c: char| c == '&' || c.is_whitespace())
            .map_or(rest.len(), |i| value + i);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn pg_error(at: &Path, action: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    let at = at.to_owned();
    move |source| StoreError::Postgres {
        at: at.clone(),
        action,
        source,
    }
}

async fn connect(url: &str, at: &Path) -> Result<Client, StoreError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(pg_error(at, "connect"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn migrate(client: &Client, at: &Path) -> Result<(), StoreError> {
    // Two nodes starting at once: one creates the tables, the other waits for it.
    client
        .batch_execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({APPEND_LOCK}); {SCHEMA_SQL}"
        ))
        .await
        .map_err(pg_error(at, "create the tables"))?;
    let found: Option<String> = client
        .query_opt(
            "SELECT value FROM loop_meta WHERE key = 'schema_version'",
            &[],
        )
        .await
        .map_err(pg_error(at, "read the schema version"))?
        .map(|row| row.get(0));
    let found = found.and_then(|v| v.parse::<i64>().ok());
    if let Some(found) = found.filter(|found| *found > SCHEMA_VERSION) {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(StoreError::NewerSchema {
            path: at.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    client
        .execute(
            "INSERT INTO loop_meta (key, value) VALUES ('schema_version', $1)
             ON CONFLICT (key) DO NOTHING",
            &[&SCHEMA_VERSION.to_string()],
        )
        .await
        .map_err(pg_error(at, "record the schema version"))?;
    client
        .batch_execute("COMMIT")
        .await
        .map_err(pg_error(at, "create the tables"))
}

/// Reads what committed after the store's cursor whenever a commit is announced (or a second
/// passed) and hands it to the subscribers; ends with the store.
async fn listen(url: String, store: std::sync::Weak<Inner>, from: Seq) {
    // Everything after `from` is published: a subscription made after the store connected
    // reads what came before from the log.
    let mut cursor = from.0;
    loop {
        let Some(at) = store.upgrade().map(|inner| inner.at.clone()) else {
            return;
        };
        let Ok((client, mut connection)) = tokio_postgres::connect(&url, NoTls).await else {
            tokio::time::sleep(POLL).await;
            continue;
        };
        let (heard, mut notified) = tokio::sync::mpsc::unbounded_channel::<()>();
        let driver = tokio::spawn(async move {
            loop {
                let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
                match message {
                    Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => {
                        if heard.send(()).is_err() {
                            return;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return,
                }
            }
        });
        if client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .is_err()
        {
            driver.abort();
            continue;
        }
        let mut listening = Conn::new(client);
        loop {
            let Some(inner) = store.upgrade() else {
                driver.abort();
                return;
            };
            match listening.read_after(&at, Seq(cursor), PAGE).await {
                Ok(records) => {
                    cursor = records.last().map_or(cursor, |r| r.seq.0);
                    let full = records.len() as i64 == PAGE;
                    if !records.is_empty() {
                        inner.subscribers.publish(records.into());
                    }
                    if full {
                        continue;
                    }
                }
                Err(_) => break,
            }
            drop(inner);
            tokio::select! {
                heard = notified.recv() => if heard.is_none() { break },
                () = tokio::time::sleep(POLL) => {}
            }
        }
        driver.abort();
    }
}

fn seq_param(seq: Seq) -> i64 {
    i64::try_from(seq.0).unwrap_or(i64::MAX)
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Events a query selects (the columns of [`SELECT_EVENTS`]), decoded.
async fn query_events<T: ?Sized + ToStatement + Sync + Send>(
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

fn decode(row: &Row, at: &Path) -> Result<EventRecord, StoreError> {
    let seq = Seq(row.get::<_, i64>(0) as u64);
    let run_id_text: &str = row.get(1);
    let corrupt = |source| StoreError::Corrupt {
        path: at.to_owned(),
        seq,
        run_id: run_id_text.to_owned(),
        source,
    };
    let run_id: RunId = run_id_text.parse().map_err(|e: uuid::Error| {
        corrupt(DecodeError::Envelope(serde::de::Error::custom(format!(
            "run_id {run_id_text:?}: {e}"
        ))))
    })?;
    let event_type: EventType = row.get::<_, &str>(3).parse().map_err(&corrupt)?;
    let event = Event::decode(event_type, row.get(6)).map_err(&corrupt)?;
    Ok(EventRecord {
        seq,
        run_id,
        version: Version(row.get::<_, i64>(2) as u64),
        ts_ms: row.get(4),
        schema: row.get::<_, i32>(5) as u32,
        event,
    })
}

fn parse_view(at: &Path, run_id: &str, text: &str) -> Result<RunView, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::CorruptProjection {
        path: at.to_owned(),
        what: format!("run {run_id}"),
        source,
    })
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping a runtime waits for its tasks, which a task of another runtime must not do
        // (the last store may well be dropped by one): let them go in the background.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn already_started(run_id: RunId, step_id: &str, owner: &str) -> StoreError {
    StoreError::InvalidAppend {
        run_id,
        reason: format!("step {step_id} was already started by run {owner}"),
    }
}

impl Inner {
    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the store")
    }

    /// One of the reading connections, for the caller alone until dropped.
    async fn reader(&self) -> tokio::sync::MutexGuard<'_, Conn> {
        let index = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        self.readers[index].lock().await
    }

    async fn append(
        self: Arc<Self>,
        run_id: RunId,
        expected: Version,
        ts_ms: i64,
        events: Vec<Event>,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let at = self.at.clone();
        let sql = |action| pg_error(&at, action);
        crate::rules::validate(run_id, expected, &events)?;
        let mut conn = self.writer.lock().await;
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
        let first = row.get::<_, i64>(2) as u64 + 1;
        if actual != expected {
            return Err(StoreError::Conflict {
                run_id,
                expected,
                actual,
            });
        }
        let mut view = match (actual, stored) {
            (Version::NONE, _) => None,
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
        let records: Vec<EventRecord> = events
            .into_iter()
            .enumerate()
            .map(|(i, event)| EventRecord {
                seq: Seq(first + i as u64),
                run_id,
                version: Version(expected.0 + 1 + i as u64),
                ts_ms,
                schema: SCHEMA,
                event,
            })
            .collect();
        let mut started: Vec<String> = Vec::new();
        for record in &records {
            match &mut view {
                Some(view) => view.apply(record),
                None => view = RunView::created(record),
            }
            if let Event::StepStarted(step) = &record.event {
                let step_id = step.step_id.to_string();
                if started.contains(&step_id) {
                    return Err(already_started(run_id, &step_id, &id));
                }
                started.push(step_id);
            }
        }
        if !started.is_empty() {
            // Step ids are global: with a second start, two steps would have one id.
            let taken = tx
                .query(&owners, &[&started])
                .await
                .map_err(sql("read a step"))?;
            if let Some(row) = taken.first() {
                return Err(already_started(run_id, row.get(0), row.get(1)));
            }
        }
        let view = view.ok_or_else(|| StoreError::InvalidAppend {
            run_id,
            reason: "the run has no RUN_CREATED event".to_owned(),
        })?;
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

    async fn rebuild(self: Arc<Self>) -> Result<RebuildStats, StoreError> {
        let at = self.at.clone();
        let sql = |action| pg_error(&at, action);
        let mut conn = self.writer.lock().await;
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

/// Runs a query selects (`run_id, view`).
async fn load_runs<T: ?Sized + ToStatement + Sync + Send>(
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

impl EventStore for PgStore {
    fn append(
        &self,
        run_id: RunId,
        expected: Version,
        ts_ms: i64,
        events: Vec<Event>,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let inner = Arc::clone(&self.inner);
        self.call(inner.append(run_id, expected, ts_ms, events))
    }

    fn read_run(&self, run_id: RunId) -> Result<Vec<EventRecord>, StoreError> {
        let inner = Arc::clone(&self.inner);
        self.call(async move {
            let mut conn = inner.reader().await;
            conn.events(
                &inner.at,
                &format!("{SELECT_EVENTS} WHERE run_id = $1 ORDER BY version"),
                &[&run_id.to_string()],
            )
            .await
        })
    }

    fn read_all(&self, after: Seq, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        let inner = Arc::clone(&self.inner);
        self.call(async move {
            let mut conn = inner.reader().await;
            conn.read_after(&inner.at, after, limit_param(limit)).await
        })
    }

    fn read_run_after(
        &self,
        run_id: RunId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let inner = Arc::clone(&self.inner);
        self.call(async move {
            let mut conn = inner.reader().await;
            conn.events(
                &inner.at,
                &format!(
                    "{SELECT_EVENTS} WHERE run_id = $1 AND seq > $2 ORDER BY version LIMIT $3"
                ),
                &[&run_id.to_string(), &seq_param(after), &limit_param(limit)],
            )
            .await
        })
    }

    fn last_seq(&self) -> Result<Seq, StoreError> {
        let inner = Arc::clone(&self.inner);
        self.call(async move {
            let mut conn = inner.reader().await;
            conn.last_seq(&inner.at).await
        })
    }

    fn subscribe(&self, after: Seq) -> Result<Subscription, StoreError> {
        // Registered first: whatever commits from now on reaches the channel, and whatever
        // committed before is in the log the subscription reads first.
        let live = self.inner.subscribers.register();
        let store = Arc::downgrade(&self.inner);
        let read_after: ReadAfter = Arc::new(move |after, limit| {
            let inner = store.upgrade().ok_or(StoreError::Closed)?;
            let reading = Arc::clone(&inner);
            block(inner.runtime(), async move {
                let mut conn = reading.reader().await;
                conn.read_after(&reading.at, after, limit_param(limit))
                    .await
            })
        });
        Ok(Subscription::new(read_after, live, after))
    }

    fn run_view(&self, run_id: RunId) -> Result<Option<RunView>, StoreError> {
        let inner = Arc::clone(&self.inner);
        self.call(async move {
            let mut conn = inner.reader().await;
            let found = conn
                .runs(
                    &inner.at,
                    "SELECT run_id, view FROM runs WHERE run_id = $1",
                    &[&run_id.to_string()],
                )
                .await?;
            Ok(found.into_iter().next())
        })
    }

    fn list_runs(&self, query: &RunQuery) -> Result<Vec<RunView>, StoreError> {
        let before = match query.before {
            Some(run_id) => match self.run_view(run_id)? {
                Some(view) => Some((view.created_ms, run_id.to_string())),
                None => return Ok(Vec::new()),
            },
            None => None,
        };
        let status = query.status.map(|s| s.as_str().to_owned());
        let workspace = query.workspace_root.clone();
        let limit = query.limit.map(limit_param);
        let inner = Arc::clone(&self.inner);
        self.call(async move {
            let mut conn = inner.reader().await;
            conn.runs(
                &inner.at,
                "SELECT run_id, view FROM runs
                         WHERE ($1::text IS NULL OR status = $1)
                           AND ($2::text IS NULL OR workspace_root = $2)
                           AND ($3::bigint IS NULL OR (created_ms, run_id) < ($3, $4::text))
                         ORDER BY created_ms DESC, run_id DESC
                         LIMIT $5",
                &[
                    &status,
                    &workspace,
                    &before.as_ref().map(|(ms, _)| *ms),
                    &before.as_ref().map(|(_, id)| id.clone()),
                    &limit,
                ],
            )
            .await
        })
    }

    fn find_runs(&self, reference: &str, limit: usize) -> Result<Vec<RunView>, StoreError> {
        let reference = reference.trim().to_owned();
        if reference.is_empty() {
            return Ok(Vec::new());
        }
        let limit = limit_param(limit);
        let prefix = reference.to_ascii_lowercase();
        let is_prefix =
            prefix.len() >= 4 && prefix.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        let inner = Arc::clone(&self.inner);
        self.call(async move {
            let mut conn = inner.reader().await;
            let at = inner.at.as_path();
            let order = "ORDER BY created_ms DESC, run_id DESC LIMIT $2";
            if is_prefix {
                // A range on the run_id index ("C" collation: byte order), not a scan.
                let upper = format!("{prefix}\u{7f}");
                let found = conn
                    .runs(
                        at,
                        &format!(
                            "SELECT run_id, view FROM runs
                             WHERE run_id >= $1 AND run_id < $3 COLLATE \"C\" {order}"
                        ),
                        &[&prefix, &limit, &upper],
                    )
                    .await?;
                if !found.is_empty() {
                    return Ok(found);
                }
            }
            for column in ["name", "run_branch"] {
                let found = conn
                    .runs(
                        at,
                        &format!("SELECT run_id, view FROM runs WHERE {column} = $1 {order}"),
                        &[&reference, &limit],
                    )
                    .await?;
                if !found.is_empty() {
                    return Ok(found);
                }
            }
            Ok(Vec::new())
        })
    }

    fn steps(&self, run_id: RunId) -> Result<Vec<StepView>, StoreError> {
        let events = self.read_run(run_id)?;
        Ok(StepView::fold(&events))
    }

    fn rebuild_projections(&self) -> Result<RebuildStats, StoreError> {
        let inner = Arc::clone(&self.inner);
        self.call(inner.rebuild())
    }

    fn beat(&self, node: &NodeBeat) -> Result<(), StoreError> {
        let inner = Arc::clone(&self.inner);
        let node = node.clone();
        self.call(async move {
            let mut conn = inner.reader().await;
            let statement = conn.statement(BEAT_SQL, &inner.at).await?;
            let capacity = i32::try_from(node.capacity).unwrap_or(i32::MAX);
            let runs = i32::try_from(node.runs).unwrap_or(i32::MAX);
            let lease_ms = i64::try_from(node.lease_ms).unwrap_or(i64::MAX);
            conn.client
                .execute(
                    &statement,
                    &[
                        &node.node_id,
                        &node.name,
                        &node.address,
                        &capacity,
                        &runs,
                        &lease_ms,
                    ],
                )
                .await
                .map_err(pg_error(&inner.at, "record a heartbeat"))?;
            Ok(())
        })
    }

    fn leave(&self, node_id: &str) -> Result<(), StoreError> {
        let inner = Arc::clone(&self.inner);
        let node_id = node_id.to_owned();
        self.call(async move {
            let conn = inner.reader().await;
            conn.client
                .execute(LEAVE_SQL, &[&node_id])
                .await
                .map_err(pg_error(&inner.at, "record a node leaving"))?;
            Ok(())
        })
    }

    fn nodes(&self) -> Result<Vec<NodeSeen>, StoreError> {
        let inner = Arc::clone(&self.inner);
        self.call(async move {
            let mut conn = inner.reader().await;
            let statement = conn.statement(NODES_SQL, &inner.at).await?;
            let rows = conn
                .client
                .query(&statement, &[])
                .await
                .map_err(pg_error(&inner.at, "read the nodes"))?;
            Ok(rows
                .iter()
                .map(|row| NodeSeen {
                    beat: NodeBeat {
                        node_id: row.get(0),
                        name: row.get(1),
                        address: row.get(2),
                        capacity: row.get::<_, i32>(3).max(0) as u32,
                        runs: row.get::<_, i32>(4).max(0) as u32,
                        lease_ms: row.get::<_, i64>(5).max(0) as u64,
                    },
                    started_ms: row.get(6),
                    heartbeat_ms: row.get(7),
                    age_ms: row.get::<_, i64>(8).max(0) as u64,
                    left: row.get(9),
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn a_password_never_reaches_a_message() {
        assert_eq!(
            redact("postgres://loop:s3cret@db.example:5432/loop"),
            "postgres://loop:***@db.example:5432/loop"
        );
        assert_eq!(
            redact("postgres://loop@127.0.0.1/loop"),
            "postgres://loop@127.0.0.1/loop"
        );
        assert_eq!(redact("host=db user=loop"), "host=db user=loop");
        // A password holding an `@`, one in the query, one in the key=value form.
        assert_eq!(
            redact("postgres://loop:p@ss@db/loop"),
            "postgres://loop:***@db/loop"
        );
        assert_eq!(
            redact("postgres://db/loop?user=loop&password=s3cret&sslmode=disable"),
            "postgres://db/loop?user=loop&password=***&sslmode=disable"
        );
        assert_eq!(
            redact("host=db password=s3cret user=loop"),
            "host=db password=*** user=loop"
        );
    }

    proptest::proptest! {
        /// Whatever the URL, a password put in it never shows.
        #[test]
        fn a_password_is_never_shown(
            user in "[a-z]{1,8}",
            // Upper case: nothing else in the URLs is; `/`, `?` and `#` must be percent-encoded.
            password in "PW[A-Z0-9@!]{2,12}",
            host in "[a-z]{1,10}",
        ) {
            for url in [
                format!("postgres://{user}:{password}@{host}:5432/loop"),
                format!("postgres://{host}/loop?user={user}&password={password}"),
                format!("host={host} user={user} password={password}"),
            ] {
                let shown = redact(&url);
                proptest::prop_assert!(!shown.contains(&password), "{shown}");
            }
        }
    }
}
