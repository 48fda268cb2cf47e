//! [`PgStore`]: the event log in a PostgreSQL database, shared by every `loopd` node of a
//! cluster.
//!
//! The same guarantees as the SQLite log ([`crate::EventStore`]), with writers on many machines:
//!
//! - **Seq order is commit order.** A sequence would hand out numbers in the order transactions
//!   start, and they may commit in another: a reader that saw seq 11 and resumed after it would
//!   never see a seq 10 that committed a moment later. So appends are serialised: each takes a
//!   transaction-scoped advisory lock (`schema::APPEND_LOCK`) first and numbers its events from the
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

//!
//! `schema` reaches the database and creates the tables, `rows` turns rows into domain values,
//! `writer` appends and rebuilds, `listen` feeds subscribers, `nodes` keeps the nodes' rows.

mod link;
mod listen;
mod nodes;
mod rebuild;
mod rows;
mod schema;
mod writer;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use loop_core::projection::{RunView, StepView};
use loop_core::{Event, EventRecord, RunId, Seq, Version};
use tokio::sync::MappedMutexGuard;
use tokio_postgres::types::ToSql;

use crate::append::Proposed;
use crate::error::StoreError;
use crate::node::{NodeBeat, NodeSeen};
use crate::postgres::link::{Link, Slot};
use crate::postgres::rows::{Conn, SELECT_EVENTS, limit_param, seq_param};
use crate::postgres::writer::{Request, Writer};
use crate::store::{self, EventStore, PageStart, Reachability, RebuildStats, RunQuery, Search};
use crate::subscription::{ReadAfter, Subscribers, Subscription};

pub(crate) use schema::redact;

/// Connections for reads.
const READERS: usize = 4;

/// The event log in a PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("at", &self.inner.link.at)
            .finish_non_exhaustive()
    }
}

struct Inner {
    link: Arc<Link>,
    /// Taken only when the store is dropped (see `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
    /// The writer's queue (see `writer`).
    requests: tokio::sync::mpsc::UnboundedSender<Request>,
    /// Opened when first needed.
    readers: Vec<Slot>,
    next_reader: AtomicUsize,
    subscribers: Arc<Subscribers>,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`, or a key=value
    /// string), creating loop's tables when they are missing.
    ///
    /// Fails with [`StoreError::NewerSchema`] for a database written by a newer build, which is
    /// not modified, and when the server cannot be reached.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        PgStore::start(url, false)
    }

    /// As [`PgStore::connect`], except that a server that cannot be reached now is no error:
    /// the store starts unreachable ([`EventStore::reachability`] says why, every call fails
    /// at once with [`StoreError::Unreachable`]) and connects, creating or checking the tables
    /// first, as soon as the server answers. For a daemon, which must start, say why it cannot
    /// work and recover by itself rather than exit while its database is down.
    pub fn connect_when_reachable(url: &str) -> Result<PgStore, StoreError> {
        PgStore::start(url, true)
    }

    fn start(url: &str, later: bool) -> Result<PgStore, StoreError> {
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
        let link = match Link::new(url, at) {
            Ok(link) => Arc::new(link),
            Err(error) => {
                // Dropped here, the driver's runtime would wait for its threads, which a caller
                // that is itself an async task may not do (tokio panics).
                runtime.shutdown_background();
                return Err(error);
            }
        };
        // Not `block_on`: the caller may itself be a task of another runtime (loopd's start).
        let connected = block(&runtime, {
            let link = Arc::clone(&link);
            async move {
                // `connect` creates or checks the tables first.
                let mut writer = Conn::new(link.connect().await?);
                let cursor = writer.last_seq(&link.at).await?;
                Ok::<_, StoreError>((writer, cursor))
            }
        });
        let (writer, cursor) = match connected {
            Ok((writer, cursor)) => (Some(writer), Some(cursor)),
            // The server does not answer (yet): the link counts it unreachable and its probe
            // tries again with backoff; the writer and the listener connect when it answers.
            // A server that answers with a refusal (an unknown role, a wrong password, no such
            // database) is a mistake in the URL that waiting will not mend: a clear error.
            Err(StoreError::Postgres {
                action: "connect",
                source,
                ..
            }) if later && source.as_db_error().is_none() => (None, None),
            Err(error) => {
                runtime.shutdown_background();
                return Err(error);
            }
        };
        let subscribers = Arc::new(Subscribers::default());
        let (requests, queue) = tokio::sync::mpsc::unbounded_channel();
        let writer = Writer::new(Arc::clone(&link), writer, cursor, Arc::clone(&subscribers));
        runtime.spawn(writer.run(queue));
        let inner = Arc::new(Inner {
            link: Arc::clone(&link),
            runtime: Some(runtime),
            requests,
            readers: (0..READERS).map(|_| Slot::new(None)).collect(),
            next_reader: AtomicUsize::new(0),
            subscribers,
        });
        inner.runtime().spawn(link.probe());
        inner
            .runtime()
            .spawn(listen::listen(Arc::downgrade(&inner), cursor));
        Ok(PgStore { inner })
    }

    /// How many subscriptions are live.
    pub fn subscriber_count(&self) -> usize {
        self.inner.subscribers.count()
    }

    /// Hands a request to the writer and waits for its answer: callable from any thread.
    fn request<T>(
        &self,
        make: impl FnOnce(std::sync::mpsc::SyncSender<Result<T, StoreError>>) -> Request,
    ) -> Result<T, StoreError> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.inner
            .requests
            .send(make(reply))
            .map_err(|_| StoreError::Closed)?;
        answer.recv().map_err(|_| StoreError::Closed)?
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

impl Inner {
    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the store")
    }

    /// Up to `limit` events of every run after `after`.
    async fn read_after(&self, after: Seq, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        let mut conn = self.reader().await?;
        conn.read_after(&self.link.at, after, limit_param(limit))
            .await
    }

    /// One of the reading connections, for the caller alone until dropped (opened again when
    /// it broke: see `link`).
    async fn reader(&self) -> Result<MappedMutexGuard<'_, Conn>, StoreError> {
        let index = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        self.link.conn(&self.readers[index]).await
    }
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

impl EventStore for PgStore {
    fn append(
        &self,
        run_id: RunId,
        expected: Version,
        ts_ms: i64,
        events: Vec<Event>,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let proposed = Proposed {
            run_id,
            expected,
            ts_ms,
            events,
        };
        self.request(|reply| Request::Append { proposed, reply })
    }

    fn read_run(&self, run_id: RunId) -> Result<Vec<EventRecord>, StoreError> {
        let inner = Arc::clone(&self.inner);
        let id = run_id.to_string();
        self.call(async move {
            let sql = format!("{SELECT_EVENTS} WHERE run_id = $1 ORDER BY version");
            let mut conn = inner.reader().await?;
            conn.events(&inner.link.at, &sql, &[&id]).await
        })
    }

    fn read_all(&self, after: Seq, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        let inner = Arc::clone(&self.inner);
        self.call(async move { inner.read_after(after, limit).await })
    }

    fn read_run_after(
        &self,
        run_id: RunId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let inner = Arc::clone(&self.inner);
        let (id, after, limit) = (run_id.to_string(), seq_param(after), limit_param(limit));
        self.call(async move {
            let sql =
                format!("{SELECT_EVENTS} WHERE run_id = $1 AND seq > $2 ORDER BY version LIMIT $3");
            let mut conn = inner.reader().await?;
            conn.events(&inner.link.at, &sql, &[&id, &after, &limit])
                .await
        })
    }

    fn last_seq(&self) -> Result<Seq, StoreError> {
        let inner = Arc::clone(&self.inner);
        self.call(async move {
            let mut conn = inner.reader().await?;
            conn.last_seq(&inner.link.at).await
        })
    }

    fn subscribe(&self, after: Seq) -> Result<Subscription, StoreError> {
        let store = Arc::downgrade(&self.inner);
        let read_after: ReadAfter = Arc::new(move |after, limit| {
            let inner = store.upgrade().ok_or(StoreError::Closed)?;
            let reading = Arc::clone(&inner);
            block(inner.runtime(), async move {
                reading.read_after(after, limit).await
            })
        });
        Ok(self.inner.subscribers.subscribe(read_after, after))
    }

    fn run_view(&self, run_id: RunId) -> Result<Option<RunView>, StoreError> {
        let inner = Arc::clone(&self.inner);
        let id = run_id.to_string();
        self.call(async move {
            let sql = "SELECT run_id, view FROM runs WHERE run_id = $1";
            let mut conn = inner.reader().await?;
            let found = conn.runs(&inner.link.at, sql, &[&id]).await?;
            Ok(found.into_iter().next())
        })
    }

    fn list_runs(&self, query: &RunQuery) -> Result<Vec<RunView>, StoreError> {
        let start = PageStart::of(self, query)?;
        if let PageStart::Nowhere = start {
            return Ok(Vec::new());
        }
        let (before_ms, before_id) = start.params();
        let status = query.status.map(|s| s.as_str().to_owned());
        let workspace = query.workspace_root.clone();
        let limit = query.limit.map(limit_param);
        let inner = Arc::clone(&self.inner);
        self.call(async move {
            let sql = "SELECT run_id, view FROM runs
                 WHERE ($1::text IS NULL OR status = $1)
                   AND ($2::text IS NULL OR workspace_root = $2)
                   AND ($3::bigint IS NULL OR (created_ms, run_id) < ($3, $4::text))
                 ORDER BY created_ms DESC, run_id DESC
                 LIMIT $5";
            let params: [&(dyn ToSql + Sync); 5] =
                [&status, &workspace, &before_ms, &before_id, &limit];
            let mut conn = inner.reader().await?;
            conn.runs(&inner.link.at, sql, &params).await
        })
    }

    fn find_runs(&self, reference: &str, limit: usize) -> Result<Vec<RunView>, StoreError> {
        let searches = store::searches(reference);
        let limit = limit_param(limit);
        let inner = Arc::clone(&self.inner);
        self.call(async move {
            let order = "ORDER BY created_ms DESC, run_id DESC LIMIT $2";
            let mut conn = inner.reader().await?;
            let at = &inner.link.at;
            for search in searches {
                let found = match search {
                    // "C" collation: the range is in byte order, as the ids' index is.
                    Search::Ids { low, high } => {
                        let sql = format!(
                            "SELECT run_id, view FROM runs
                             WHERE run_id >= $1 AND run_id < $3 COLLATE \"C\" {order}"
                        );
                        conn.runs(at, &sql, &[&low, &limit, &high]).await?
                    }
                    Search::Names { name } => {
                        let sql = format!(
                            "SELECT run_id, view FROM runs WHERE run_id IN (
                                 SELECT run_id FROM events
                                 WHERE type IN ('RUN_CREATED', 'RUN_NAMED')
                                   AND ((payload::jsonb) ->> 'name') = $1) {order}"
                        );
                        conn.runs(at, &sql, &[&name, &limit]).await?
                    }
                    Search::Column { column, value } => {
                        let sql =
                            format!("SELECT run_id, view FROM runs WHERE {column} = $1 {order}");
                        conn.runs(at, &sql, &[&value, &limit]).await?
                    }
                };
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
        self.request(|reply| Request::Rebuild { reply })
    }

    fn reachability(&self) -> Reachability {
        self.inner.link.reachability()
    }

    fn beat(&self, node: &NodeBeat) -> Result<(), StoreError> {
        let inner = Arc::clone(&self.inner);
        let node = node.clone();
        self.call(async move {
            let mut conn = inner.reader().await?;
            nodes::beat(&mut conn, &inner.link.at, &node).await
        })
    }

    fn leave(&self, node_id: &str) -> Result<(), StoreError> {
        let inner = Arc::clone(&self.inner);
        let node_id = node_id.to_owned();
        self.call(async move {
            let mut conn = inner.reader().await?;
            nodes::leave(&mut conn, &inner.link.at, &node_id).await
        })
    }

    fn nodes(&self) -> Result<Vec<NodeSeen>, StoreError> {
        let inner = Arc::clone(&self.inner);
        self.call(async move {
            let mut conn = inner.reader().await?;
            nodes::nodes(&mut conn, &inner.link.at).await
        })
    }
}
