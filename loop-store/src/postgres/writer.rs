//! The single writer of a PostgreSQL store: one task that commits the appends waiting at that
//! moment as one group, as the SQLite writer does.
//!
//! Appenders queue requests; the writer takes whatever is queued (up to [`MAX_BATCH`]) and
//! commits the group in one transaction holding [`APPEND_LOCK`], so seq order stays commit
//! order across every node of the cluster. A group costs one or two round trips whatever its
//! size, where an append alone used to cost four:
//!
//! - **Under the lock, then written** (a group whose runs this writer does not know as they
//!   stand): one flight takes the lock and reads, for every run of the group, its version and,
//!   only when the writer's copy is not current, its stored view; the log's last seq; the runs
//!   that already started any step the group starts. Every check is made on that (see
//!   `append::fold`) before anything is written, so a refused append writes nothing and the
//!   rest of its group goes on. A second flight writes the accepted appends' events, their
//!   step ids, each run's row once, the notification, and commits.
//! - **Written at once** (every run of the group is one this writer last appended to, at the
//!   version its appender expects, and no other node's commit has been seen since): one flight
//!   takes the lock, writes and commits, the checks having been made on the writer's copies.
//!   The log's own keys hold the guess to account: another node's append to one of these runs
//!   or to the log would collide with the group's `(run_id, version)` or `seq`, a step started
//!   elsewhere with `steps_started`'s key, and then the whole transaction rolls back and the
//!   group is written again the first way. After a failed guess the writer reads under the
//!   lock until a group finds that no other node wrote since its last commit: a node sharing
//!   the log with busy others pays the second round trip, not a rollback as well.
//!
//! Only after the commit does it answer the appenders and publish the records to subscribers.
//! A failure of the transaction as a whole (the server gone mid-commit, say) is no append's
//! fault: every appender in the group hears why, and the writer forgets what it knew.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::mpsc::SyncSender;

use loop_core::projection::RunView;
use loop_core::{EventRecord, RunId, Seq, StepId, Version};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::Statement;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::append::{self, Proposed};
use crate::error::StoreError;
use crate::postgres::link::{Link, Slot};
use crate::postgres::rebuild;
use crate::postgres::rows::{Conn, SELECT_EVENTS, UPSERT_RUNS_SQL, parse_view, query_events};
use crate::postgres::schema::{APPEND_LOCK, LOCK_SQL, pg_error};
use crate::store::RebuildStats;
use crate::subscription::Subscribers;

mod columns;

use columns::Rows;

/// The channel commits are announced on.
pub(crate) const CHANNEL: &str = "loop_events";
/// The most appends committed in one transaction.
const MAX_BATCH: usize = 512;
/// Run views kept between groups; past this the writer starts afresh.
const RUN_CACHE_LIMIT: usize = 4096;

/// Under the lock, for each run of a group: its version, its row's version, and its row's view
/// unless the writer already holds the view at that version (`known`).
const STATE_SQL: &str = "SELECT r.id, coalesce(e.version, 0), v.version,
            CASE WHEN v.version IS DISTINCT FROM r.known THEN v.view END
     FROM unnest($1::text[], $2::bigint[]) AS r(id, known)
     LEFT JOIN LATERAL (SELECT max(version) AS version FROM events WHERE run_id = r.id) e ON true
     LEFT JOIN runs v ON v.run_id = r.id";
const LAST_SEQ_SQL: &str = "SELECT coalesce(max(seq), 0) FROM events";
const STEP_OWNERS_SQL: &str = "SELECT step_id, run_id FROM steps_started WHERE step_id = ANY($1)";
/// Every event of a group in one statement.
const INSERT_EVENTS_SQL: &str =
    "INSERT INTO events (seq, run_id, version, type, ts_ms, schema, payload)
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::bigint[],
                          $6::integer[], $7::text[])";
const INSERT_STEPS_SQL: &str = "INSERT INTO steps_started (step_id, run_id)
     SELECT * FROM unnest($1::text[], $2::text[])";
const NOTIFY_SQL: &str = "SELECT pg_notify($1, $2)";

pub(crate) type Reply<T> = SyncSender<Result<T, StoreError>>;

pub(crate) enum Request {
    Append {
        proposed: Proposed,
        reply: Reply<Vec<EventRecord>>,
    },
    Rebuild {
        reply: Reply<RebuildStats>,
    },
}

/// What each append of a group comes to.
type Outcomes = Vec<Result<Vec<EventRecord>, StoreError>>;

pub(crate) struct Writer {
    link: Arc<Link>,
    /// The writing connection (shared only to be borrowed apart from the writer).
    slot: Arc<Slot>,
    /// The log's last seq as this writer last saw it under the lock; `None` when unknown.
    last_seq: Option<Seq>,
    /// Runs as this writer last wrote them.
    runs: HashMap<RunId, RunView>,
    /// Whether to write groups at once on a guess: not after a guess failed, until a group
    /// read under the lock finds that no other node wrote since this writer's last commit.
    guessing: bool,
    subscribers: Arc<Subscribers>,
}

impl Writer {
    /// A writer on `conn` (`None`: connect at the first group), the log's last seq as read on
    /// it (`None`: read under the lock at the first group).
    pub(crate) fn new(
        link: Arc<Link>,
        conn: Option<Conn>,
        last_seq: Option<Seq>,
        subscribers: Arc<Subscribers>,
    ) -> Writer {
        Writer {
            link,
            slot: Arc::new(Slot::new(conn)),
            last_seq,
            runs: HashMap::new(),
            guessing: true,
            subscribers,
        }
    }

    /// Serves requests until every sender is gone.
    pub(crate) async fn run(mut self, mut requests: UnboundedReceiver<Request>) {
        let mut deferred: Option<Request> = None;
        loop {
            let first = match deferred.take() {
                Some(request) => request,
                None => match requests.recv().await {
                    Some(request) => request,
                    None => return,
                },
            };
            let mut group = match first {
                Request::Rebuild { reply } => {
                    let _ = reply.send(self.rebuild().await);
                    continue;
                }
                Request::Append { proposed, reply } => vec![(proposed, reply)],
            };
            while group.len() < MAX_BATCH {
                match requests.try_recv() {
                    Ok(Request::Append { proposed, reply }) => group.push((proposed, reply)),
                    Ok(rebuild @ Request::Rebuild { .. }) => {
                        deferred = Some(rebuild);
                        break;
                    }
                    Err(_) => break,
                }
            }
            let (proposals, replies): (Vec<Proposed>, Vec<_>) = group.into_iter().unzip();
            match self.commit(proposals).await {
                Ok(outcomes) => {
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(outcome);
                    }
                }
                Err(error) => {
                    // Nothing of the group is stored, or, cut off at its commit, it cannot be
                    // known here whether it is: each appender hears why, and the writer reads
                    // the log again before its next group.
                    self.forget();
                    let reason = error.to_string();
                    for reply in replies {
                        let _ = reply.send(Err(self.failed(&reason, &error)));
                    }
                }
            }
        }
    }

    /// The error an appender hears when its group failed as a whole.
    fn failed(&self, reason: &str, error: &StoreError) -> StoreError {
        match error {
            StoreError::Write { path, reason } => StoreError::Write {
                path: path.clone(),
                reason: reason.clone(),
            },
            StoreError::Unreachable { at, reason } => StoreError::Unreachable {
                at: at.clone(),
                reason: reason.clone(),
            },
            _ => StoreError::Write {
                path: self.link.at.clone(),
                reason: reason.to_owned(),
            },
        }
    }

    fn forget(&mut self) {
        self.runs.clear();
        self.last_seq = None;
    }

    /// Commits a group; `Err` when its transaction failed as a whole.
    async fn commit(&mut self, proposals: Vec<Proposed>) -> Result<Outcomes, StoreError> {
        let (link, slot) = (Arc::clone(&self.link), Arc::clone(&self.slot));
        let mut conn = link.conn(&slot).await?;
        let statements = Statements::prepare(&mut conn, &link).await?;
        if let Some(last_seq) = self.current(&proposals) {
            // Copies: should the guess fail, the group is folded again from what is read.
            let mut staged = Staged::new(last_seq);
            for proposed in proposals.iter().cloned() {
                let run_id = proposed.run_id;
                let runs = &mut self.runs;
                let base = || match runs.remove(&run_id) {
                    Some(view) => (view.version, Some(view)),
                    None => (Version::NONE, None),
                };
                staged.fold(proposed, base, |_| Ok(None));
            }
            if staged.records() == 0 {
                return Ok(self.committed(staged));
            }
            match staged.write(&conn, &statements, &link, true).await? {
                Written::Committed => return Ok(self.committed(staged)),
                // Another node wrote meanwhile: read under the lock and check again. The runs
                // this group folded left the cache; the others' views are checked by version.
                Written::Collided => self.guessing = false,
            }
        }
        let staged = self.stage_under_lock(&conn, &statements, proposals).await?;
        if staged.records() == 0 {
            // Every append was refused: nothing to write.
            rollback(&conn, &link).await?;
            return Ok(self.committed(staged));
        }
        match staged.write(&conn, &statements, &link, false).await? {
            Written::Committed => Ok(self.committed(staged)),
            Written::Collided => Err(StoreError::Write {
                path: link.at.clone(),
                reason: "the log changed under the append lock".to_owned(),
            }),
        }
    }

    /// The log's last seq, when every append of `proposals` may be written at once: each to a
    /// run this writer holds at the version its appender expects (or to the run an earlier
    /// append of the group leaves there), and no other node's commit seen since this writer's.
    fn current(&self, proposals: &[Proposed]) -> Option<Seq> {
        if !self.guessing {
            return None;
        }
        let last_seq = self.last_seq?;
        if self.subscribers.published() > last_seq {
            return None;
        }
        let mut versions: HashMap<RunId, Version> = HashMap::new();
        for proposed in proposals {
            let version = match versions.get(&proposed.run_id) {
                Some(version) => *version,
                None => match self.runs.get(&proposed.run_id) {
                    Some(view) => view.version,
                    // A new run, as far as can be told: the log's keys refuse it if not.
                    None if proposed.expected == Version::NONE => Version::NONE,
                    None => return None,
                },
            };
            if version != proposed.expected {
                return None;
            }
            versions.insert(
                proposed.run_id,
                Version(version.0 + proposed.events.len() as u64),
            );
        }
        Some(last_seq)
    }

    /// Takes the lock and reads what the group's checks need in one flight, then folds every
    /// append on it.
    async fn stage_under_lock(
        &mut self,
        conn: &Conn,
        statements: &Statements,
        proposals: Vec<Proposed>,
    ) -> Result<Staged, StoreError> {
        let at = &self.link.at;
        let sql = |action| pg_error(at, action);
        let mut ids: Vec<String> = Vec::new();
        let mut known: Vec<i64> = Vec::new();
        let mut seen: HashSet<RunId> = HashSet::new();
        for proposed in &proposals {
            if seen.insert(proposed.run_id) {
                ids.push(proposed.run_id.to_string());
                known.push(
                    self.runs
                        .get(&proposed.run_id)
                        .map_or(-1, |v| v.version.0 as i64),
                );
            }
        }
        let steps: Vec<String> = proposals
            .iter()
            .flat_map(|p| append::starts(&p.events))
            .map(|id| id.to_string())
            .collect();
        let client = &conn.client;
        let state_params: [&(dyn ToSql + Sync); 2] = [&ids, &known];
        let owner_params: [&(dyn ToSql + Sync); 1] = [&steps];
        // Sent together (tokio-postgres pipelines what is awaited at once), run in order: the
        // reads happen holding the lock.
        let (begun, locked, state, last, owners) = tokio::join!(
            client.batch_execute("BEGIN"),
            client.execute(&statements.lock, &[&APPEND_LOCK]),
            client.query(&statements.state, &state_params),
            client.query_one(&statements.last_seq, &[]),
            client.query(&statements.owners, &owner_params),
        );
        let read = begun
            .and(locked)
            .and_then(|_| Ok((state?, last?, owners?)))
            .map_err(sql("read runs under the append lock"));
        let (state, last, owners) = match read {
            Ok(read) => read,
            Err(error) => {
                let _ = rollback(conn, &self.link).await;
                return Err(error);
            }
        };
        let last_seq = Seq(last.get::<_, i64>(0) as u64);
        // Nobody else wrote since this writer's last commit: guesses would hold again.
        self.guessing = self.last_seq == Some(last_seq);
        let owners: HashMap<String, String> = owners
            .iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1)))
            .collect();
        let mut bases: HashMap<RunId, (Version, Option<RunView>)> = HashMap::new();
        for row in &state {
            let id: String = row.get(0);
            let version = Version(row.get::<_, i64>(1) as u64);
            let row_version = row.get::<_, Option<i64>>(2).map(|v| Version(v as u64));
            let view: Option<&str> = row.get(3);
            let Ok(run_id) = id.parse::<RunId>() else {
                continue;
            };
            let base = match self.runs.remove(&run_id) {
                Some(cached) if cached.version == version => Some(cached),
                _ if version == Version::NONE => None,
                _ => match (row_version, view) {
                    (Some(stored), Some(text)) if stored == version => {
                        Some(parse_view(at, &id, text)?)
                    }
                    // The row lags or is gone (dropped by hand): refold it from the events.
                    _ => {
                        let sql = format!("{SELECT_EVENTS} WHERE run_id = $1 ORDER BY version");
                        let earlier = query_events(client, at, &sql, &[&id]).await?;
                        RunView::fold(&earlier)
                    }
                },
            };
            bases.insert(run_id, (version, base));
        }
        let mut staged = Staged::new(last_seq);
        for proposed in proposals {
            let run_id = proposed.run_id;
            let base = || bases.remove(&run_id).unwrap_or((Version::NONE, None));
            staged.fold(proposed, base, |step_id| {
                Ok(owners.get(&step_id.to_string()).cloned())
            });
        }
        self.last_seq = Some(last_seq);
        Ok(staged)
    }

    /// Remembers what a committed group left and publishes its records.
    fn committed(&mut self, staged: Staged) -> Outcomes {
        self.last_seq = Some(Seq(staged.next_seq.0 - 1));
        if self.runs.len() + staged.views.len() > RUN_CACHE_LIMIT {
            self.runs.clear();
        }
        self.runs.extend(
            staged
                .views
                .into_iter()
                .filter_map(|(run_id, (_, view))| Some((run_id, view?))),
        );
        if self.subscribers.any() {
            let published: Vec<EventRecord> = staged
                .outcomes
                .iter()
                .filter_map(|outcome| outcome.as_ref().ok())
                .flatten()
                .cloned()
                .collect();
            if !published.is_empty() {
                self.subscribers.publish(published.into());
            }
        }
        staged.outcomes
    }

    async fn rebuild(&mut self) -> Result<RebuildStats, StoreError> {
        self.forget();
        let (link, slot) = (Arc::clone(&self.link), Arc::clone(&self.slot));
        let mut conn = link.conn(&slot).await?;
        rebuild::rebuild(&mut conn, &link.at).await
    }
}

/// The statements a group uses, prepared on the writer's connection.
struct Statements {
    lock: Statement,
    state: Statement,
    last_seq: Statement,
    owners: Statement,
    insert_events: Statement,
    insert_steps: Statement,
    upsert_runs: Statement,
    notify: Statement,
}

impl Statements {
    async fn prepare(conn: &mut Conn, link: &Link) -> Result<Statements, StoreError> {
        let at = &link.at;
        Ok(Statements {
            lock: conn.statement(LOCK_SQL, at).await?,
            state: conn.statement(STATE_SQL, at).await?,
            last_seq: conn.statement(LAST_SEQ_SQL, at).await?,
            owners: conn.statement(STEP_OWNERS_SQL, at).await?,
            insert_events: conn.statement(INSERT_EVENTS_SQL, at).await?,
            insert_steps: conn.statement(INSERT_STEPS_SQL, at).await?,
            upsert_runs: conn.statement(UPSERT_RUNS_SQL, at).await?,
            notify: conn.statement(NOTIFY_SQL, at).await?,
        })
    }
}

/// A group folded and checked, not yet written.
struct Staged {
    outcomes: Outcomes,
    /// Each run's version and view after the group's accepted appends (`None`: a new run's).
    views: HashMap<RunId, (Version, Option<RunView>)>,
    /// The step ids the accepted appends start, with their runs.
    started: HashMap<StepId, RunId>,
    next_seq: Seq,
}

enum Written {
    Committed,
    /// A key of the log refused the group (written at once on a guess that turned out stale);
    /// the transaction rolled back.
    Collided,
}

impl Staged {
    fn new(last_seq: Seq) -> Staged {
        Staged {
            outcomes: Vec::new(),
            views: HashMap::new(),
            started: HashMap::new(),
            next_seq: Seq(last_seq.0 + 1),
        }
    }

    fn records(&self) -> usize {
        self.outcomes.iter().flatten().map(Vec::len).sum()
    }

    /// Folds one append onto its run as the group leaves it, or, for the group's first append
    /// to the run, as `base` says it stands; checks its step ids against the group's and those
    /// `owner` knows.
    fn fold(
        &mut self,
        proposed: Proposed,
        base: impl FnOnce() -> (Version, Option<RunView>),
        mut owner: impl FnMut(StepId) -> Result<Option<String>, StoreError>,
    ) {
        let Staged {
            outcomes,
            views,
            started,
            next_seq,
        } = self;
        let run_id = proposed.run_id;
        let (actual, view) = views.entry(run_id).or_insert_with(base);
        let outcome = append::fold(proposed, *actual, view, *next_seq, |step_id| match started
            .get(&step_id)
        {
            Some(run) => Ok(Some(run.to_string())),
            None => owner(step_id),
        });
        outcomes.push(outcome.map(|folded| {
            let count = folded.records.len() as u64;
            *actual = Version(actual.0 + count);
            *next_seq = Seq(next_seq.0 + count);
            for step_id in folded.started {
                started.insert(step_id, run_id);
            }
            folded.records
        }));
    }

    /// Writes the accepted appends and commits, in one flight (with the lock taken first when
    /// `begin`).
    async fn write(
        &self,
        conn: &Conn,
        statements: &Statements,
        link: &Link,
        begin: bool,
    ) -> Result<Written, StoreError> {
        let rows = Rows::of(self);
        let client = &conn.client;
        let last = (self.next_seq.0 - 1).to_string();
        let event_params = rows.event_params();
        let run_params = rows.runs.params();
        let step_params: [&(dyn ToSql + Sync); 2] = [&rows.step_ids, &rows.step_runs];
        let notify_params: [&(dyn ToSql + Sync); 2] = [&CHANNEL, &last];
        // Each in its own arm: an arm sends its statement when first polled, and these must
        // reach the server in this order.
        let opening = async {
            if begin {
                client.batch_execute("BEGIN").await
            } else {
                Ok(())
            }
        };
        let locking = async {
            if begin {
                client.execute(&statements.lock, &[&APPEND_LOCK]).await
            } else {
                Ok(0)
            }
        };
        let steps = async {
            if rows.step_ids.is_empty() {
                Ok(0)
            } else {
                client.execute(&statements.insert_steps, &step_params).await
            }
        };
        let (opened, locked, events, steps, runs, notified, committed) = tokio::join!(
            opening,
            locking,
            client.execute(&statements.insert_events, &event_params),
            steps,
            client.execute(&statements.upsert_runs, &run_params),
            client.execute(&statements.notify, &notify_params),
            client.batch_execute("COMMIT"),
        );
        let writes = [opened.map(|()| 0), locked, events, steps, runs, notified];
        let refused = writes.iter().find_map(|w| w.as_ref().err());
        match (refused, committed) {
            (None, Ok(())) => Ok(Written::Committed),
            // The server answered the COMMIT of a failed transaction with a rollback.
            (Some(error), Ok(())) if begin && error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                Ok(Written::Collided)
            }
            (Some(error), _) => Err(StoreError::Write {
                path: link.at.clone(),
                reason: describe(error),
            }),
            (None, Err(error)) => Err(StoreError::Write {
                path: link.at.clone(),
                reason: describe(&error),
            }),
        }
    }
}

/// What went wrong, with the server's own message when it sent one (a bare
/// `tokio_postgres::Error` says only "db error").
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{error}: {db}"),
        None => error.to_string(),
    }
}

async fn rollback(conn: &Conn, link: &Link) -> Result<(), StoreError> {
    conn.client
        .batch_execute("ROLLBACK")
        .await
        .map_err(pg_error(&link.at, "roll back"))
}
