//! [`SqliteStore`]: the event log in one SQLite file.
//!
//! One writer thread owns the only writing connection (see `writer`); readers take a
//! connection from a small pool, so reads never wait for a commit (WAL). What is stored and
//! what is folded when read is described in `rows`.

mod rows;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use loop_core::projection::{RunView, StepView};
use loop_core::{Event, EventRecord, RunId, Seq, Version};
use rusqlite::Connection;

use crate::error::StoreError;
use crate::node::{NodeBeat, NodeSeen};
use crate::sqlite::schema::error_at;
use crate::sqlite::writer::{Request, Writer};
use crate::store::{self, EventStore, PageStart, RebuildStats, RunQuery, Search};
use crate::subscription::{ReadAfter, Subscribers, Subscription};

/// The event log in one SQLite file (WAL, `synchronous=FULL`, owner-only permissions).
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// The most reading connections open at once. Many readers at a time (a burst of streams
/// catching up) wait for a connection rather than each opening one: the files a connection
/// holds, and its page cache, stay bounded.
const MAX_READERS: usize = 8;

struct Inner {
    path: PathBuf,
    requests: Option<Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    /// The watcher thread and what stops it.
    watcher: Option<(Sender<()>, JoinHandle<()>)>,
    readers: Mutex<Readers>,
    reader_free: Condvar,
    subscribers: Arc<Subscribers>,
    /// The nodes of this process: a SQLite log is one machine's, and the processes that share
    /// its file (`loopd`, a `loopctl exec` beside it) never take each other's runs, so no node
    /// needs another's heartbeat and none is written to the file.
    nodes: Mutex<Vec<LocalNode>>,
}

struct LocalNode {
    beat: NodeBeat,
    started: std::time::SystemTime,
    heartbeat: std::time::Instant,
    heartbeat_ms: i64,
    left: bool,
}

/// The reading connections: the idle ones, and how many exist.
#[derive(Default)]
struct Readers {
    idle: Vec<Connection>,
    open: usize,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue ends the writer once it has answered what was queued.
        self.requests.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        // Its connection closes before the store is gone: a file copied right after holds
        // everything (the last connection to close checkpoints the WAL).
        if let Some((stop, watcher)) = self.watcher.take() {
            drop(stop);
            let _ = watcher.join();
        }
    }
}

/// How often the watcher asks whether another process committed to the file.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Hands subscribers what other processes (another store on the same file: `loopctl exec`
/// beside a daemon, two daemons on one `--store`) commit, which this store's writer never
/// sees. `PRAGMA data_version` on its own connection changes when any other connection has
/// committed; then the events past what was last published are read and published. Ends, its
/// connection closed, as soon as `stop` is dropped (with the store).
fn watch(path: &Path, subscribers: &Subscribers, stop: &mpsc::Receiver<()>) {
    let Ok(conn) = schema::connect(path) else {
        return;
    };
    let version = |conn: &Connection| -> Option<i64> {
        conn.query_row("PRAGMA data_version", [], |row| row.get(0))
            .ok()
    };
    let mut seen = version(&conn);
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(WATCH_EVERY) {
        let now = version(&conn);
        if now == seen {
            continue;
        }
        seen = now;
        loop {
            let after = subscribers.published();
            let Ok(records) = rows::query_events(
                &conn,
                path,
                "WHERE seq > ?1 ORDER BY seq LIMIT 1024",
                [i64::try_from(after.0).unwrap_or(i64::MAX)],
            ) else {
                break;
            };
            let full = records.len() == 1024;
            if !records.is_empty() {
                subscribers.publish(records.into());
            }
            if !full {
                break;
            }
        }
    }
}

impl SqliteStore {
    /// Opens the log at `path`, creating it (mode 0600) when missing and migrating its schema.
    ///
    /// Fails with [`StoreError::NotOurs`] for a file that is not a loop log and with
    /// [`StoreError::NewerSchema`] for one written by a newer build; neither is modified.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_owned();
        let conn = schema::open_and_migrate(&path)?;
        let subscribers = Arc::new(Subscribers::default());
        let writer = Writer::new(conn, path.clone(), Arc::clone(&subscribers))?;
        let (requests, queue) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("loop-store-writer".to_owned())
            .spawn(move || writer.run(queue))
            .map_err(|source| StoreError::Io {
                path: path.clone(),
                action: "start the writer thread",
                source,
            })?;
        let (stop_watching, stop) = mpsc::channel::<()>();
        let watcher = {
            let (watched, subscribers) = (path.clone(), Arc::clone(&subscribers));
            std::thread::Builder::new()
                .name("loop-store-watch".to_owned())
                .spawn(move || watch(&watched, &subscribers, &stop))
                .map_err(|source| StoreError::Io {
                    path: path.clone(),
                    action: "start the watcher thread",
                    source,
                })?
        };
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                requests: Some(requests),
                writer: Some(handle),
                watcher: Some((stop_watching, watcher)),
                readers: Mutex::default(),
                nodes: Mutex::default(),
                reader_free: Condvar::new(),
                subscribers,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// How many subscriptions are live.
    pub fn subscriber_count(&self) -> usize {
        self.inner.subscribers.count()
    }

    fn request<T>(
        &self,
        make: impl FnOnce(mpsc::SyncSender<Result<T, StoreError>>) -> Request,
    ) -> Result<T, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let requests = self.inner.requests.as_ref().ok_or(StoreError::Closed)?;
        requests.send(make(reply)).map_err(|_| StoreError::Closed)?;
        answer.recv().map_err(|_| StoreError::Closed)?
    }
}

impl Inner {
    fn with_reader<T>(
        &self,
        read: impl FnOnce(&Connection, &Path) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.take_reader()?;
        let result = read(&conn, &self.path);
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        readers.idle.push(conn);
        drop(readers);
        self.reader_free.notify_one();
        result
    }

    /// An idle connection, a new one while there are fewer than [`MAX_READERS`], else the next
    /// one given back.
    fn take_reader(&self) -> Result<Connection, StoreError> {
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(conn) = readers.idle.pop() {
                return Ok(conn);
            }
            if readers.open < MAX_READERS {
                readers.open += 1;
                drop(readers);
                return schema::connect(&self.path).inspect_err(|_| {
                    self.readers.lock().unwrap_or_else(|e| e.into_inner()).open -= 1;
                    self.reader_free.notify_one();
                });
            }
            readers = self
                .reader_free
                .wait(readers)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    fn read_all(&self, after: Seq, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        self.with_reader(|conn, path| {
            rows::query_events(
                conn,
                path,
                "WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                // SQLite integers end at i64::MAX: any position past that is past every event.
                [
                    i64::try_from(after.0).unwrap_or(i64::MAX),
                    i64::try_from(limit).unwrap_or(i64::MAX),
                ],
            )
        })
    }
}

impl EventStore for SqliteStore {
    fn append(
        &self,
        run_id: RunId,
        expected: Version,
        ts_ms: i64,
        events: Vec<Event>,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.request(|reply| Request::Append {
            run_id,
            expected,
            ts_ms,
            events,
            reply,
        })
    }

    fn read_run(&self, run_id: RunId) -> Result<Vec<EventRecord>, StoreError> {
        self.inner.with_reader(|conn, path| {
            rows::query_events(
                conn,
                path,
                "WHERE run_id = ?1 ORDER BY version",
                [run_id.to_string()],
            )
        })
    }

    fn read_all(&self, after: Seq, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        self.inner.read_all(after, limit)
    }

    fn read_run_after(
        &self,
        run_id: RunId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.inner.with_reader(|conn, path| {
            // The (run_id, version) index walks the run's own events: O(the run), not the log.
            rows::query_events(
                conn,
                path,
                "WHERE run_id = ?1 AND seq > ?2 ORDER BY version LIMIT ?3",
                rusqlite::params![
                    run_id.to_string(),
                    i64::try_from(after.0).unwrap_or(i64::MAX),
                    i64::try_from(limit).unwrap_or(i64::MAX),
                ],
            )
        })
    }

    fn last_seq(&self) -> Result<Seq, StoreError> {
        self.inner.with_reader(|conn, path| {
            let seq: Option<i64> = conn
                .query_row("SELECT max(seq) FROM events", [], |row| row.get(0))
                .map_err(error_at(path, "read the last seq"))?;
            Ok(Seq(seq.unwrap_or(0) as u64))
        })
    }

    fn subscribe(&self, after: Seq) -> Result<Subscription, StoreError> {
        let inner = Arc::downgrade(&self.inner);
        let read_after: ReadAfter = Arc::new(move |after, limit| {
            inner
                .upgrade()
                .ok_or(StoreError::Closed)?
                .read_all(after, limit)
        });
        Ok(self.inner.subscribers.subscribe(read_after, after))
    }

    fn run_view(&self, run_id: RunId) -> Result<Option<RunView>, StoreError> {
        self.inner
            .with_reader(|conn, path| rows::load_run(conn, path, run_id))
    }

    fn list_runs(&self, query: &RunQuery) -> Result<Vec<RunView>, StoreError> {
        let start = PageStart::of(self, query)?;
        if let PageStart::Nowhere = start {
            return Ok(Vec::new());
        }
        let (before_ms, before_id) = start.params();
        self.inner.with_reader(|conn, path| {
            rows::load_runs(
                conn,
                path,
                "WHERE (?1 IS NULL OR status = ?1)
                   AND (?2 IS NULL OR workspace_root = ?2)
                   AND (?3 IS NULL OR (created_ms, run_id) < (?3, ?4))
                 ORDER BY created_ms DESC, run_id DESC
                 LIMIT ?5",
                rusqlite::params![
                    query.status.map(|s| s.as_str()),
                    query.workspace_root,
                    before_ms,
                    before_id,
                    query.limit.map_or(-1, |n| n.min(i64::MAX as usize) as i64),
                ],
            )
        })
    }

    fn find_runs(&self, reference: &str, limit: usize) -> Result<Vec<RunView>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let order = "ORDER BY created_ms DESC, run_id DESC LIMIT ?2";
        self.inner.with_reader(|conn, path| {
            for search in store::searches(reference) {
                let found = match search {
                    Search::Ids { low, high } => rows::load_runs(
                        conn,
                        path,
                        &format!("WHERE run_id >= ?1 AND run_id < ?3 {order}"),
                        rusqlite::params![low, limit, high],
                    )?,
                    Search::Names { name } => rows::load_runs(
                        conn,
                        path,
                        &format!(
                            "WHERE run_id IN (SELECT run_id FROM events
                                              WHERE type IN ('RUN_CREATED', 'RUN_NAMED')
                                                AND json_extract(payload, '$.name') = ?1)
                             {order}"
                        ),
                        rusqlite::params![name, limit],
                    )?,
                    Search::Column { column, value } => rows::load_runs(
                        conn,
                        path,
                        &format!("WHERE {column} = ?1 {order}"),
                        rusqlite::params![value, limit],
                    )?,
                };
                if !found.is_empty() {
                    return Ok(found);
                }
            }
            Ok(Vec::new())
        })
    }

    fn steps(&self, run_id: RunId) -> Result<Vec<StepView>, StoreError> {
        self.inner
            .with_reader(|conn, path| rows::load_steps(conn, path, run_id))
    }

    fn rebuild_projections(&self) -> Result<RebuildStats, StoreError> {
        self.request(|reply| Request::Rebuild { reply })
    }

    fn beat(&self, node: &NodeBeat) -> Result<(), StoreError> {
        let now_ms = unix_ms(std::time::SystemTime::now());
        let mut nodes = self.inner.nodes.lock().unwrap_or_else(|e| e.into_inner());
        match nodes.iter_mut().find(|n| n.beat.node_id == node.node_id) {
            Some(known) => {
                known.beat = node.clone();
                known.heartbeat = std::time::Instant::now();
                known.heartbeat_ms = now_ms;
                known.left = false;
            }
            None => nodes.push(LocalNode {
                beat: node.clone(),
                started: std::time::SystemTime::now(),
                heartbeat: std::time::Instant::now(),
                heartbeat_ms: now_ms,
                left: false,
            }),
        }
        Ok(())
    }

    fn leave(&self, node_id: &str) -> Result<(), StoreError> {
        let mut nodes = self.inner.nodes.lock().unwrap_or_else(|e| e.into_inner());
        for node in nodes.iter_mut().filter(|n| n.beat.node_id == node_id) {
            node.left = true;
        }
        Ok(())
    }

    fn nodes(&self) -> Result<Vec<NodeSeen>, StoreError> {
        let nodes = self.inner.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen: Vec<NodeSeen> = nodes
            .iter()
            .map(|node| NodeSeen {
                beat: node.beat.clone(),
                started_ms: unix_ms(node.started),
                heartbeat_ms: node.heartbeat_ms,
                age_ms: node.heartbeat.elapsed().as_millis() as u64,
                left: node.left,
            })
            .collect();
        seen.sort_by_key(|node| node.age_ms);
        Ok(seen)
    }
}

fn unix_ms(at: std::time::SystemTime) -> i64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}
