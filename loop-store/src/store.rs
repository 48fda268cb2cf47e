//! The store's interface, independent of the database behind it.

use loop_core::projection::{RunView, StepView};
use loop_core::{Event, EventRecord, RunId, RunStatus, Seq, Version};

use crate::error::StoreError;
use crate::node::{NodeBeat, NodeSeen};
use crate::subscription::Subscription;

/// Which runs [`EventStore::list_runs`] returns: newest first, optionally filtered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunQuery {
    pub status: Option<RunStatus>,
    pub workspace_root: Option<String>,
    /// Only runs created before this one (a cursor: the last run of the previous page).
    pub before: Option<RunId>,
    /// At most this many runs; `None` for all.
    pub limit: Option<usize>,
}

/// What a projection rebuild did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RebuildStats {
    pub events: u64,
    pub runs: u64,
    pub steps: u64,
}

/// Whether the store reaches its database, as it last found out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reachability {
    Reachable,
    /// Calls fail at once with [`StoreError::Unreachable`] while the store reconnects in the
    /// background (with backoff); `reason` is the last failure to connect.
    Unreachable {
        /// When the store lost the database (milliseconds since the Unix epoch).
        since_ms: i64,
        reason: String,
    },
}

/// The event log and its projections.
///
/// Implementations guarantee: appends are atomic and durable when they return; `seq` is global
/// and gap-free; a run's versions count from 1 with no gap; projections read here are always
/// those of a committed prefix of the log.
pub trait EventStore: Send + Sync {
    /// Appends `events` to a run whose current version must be `expected`, all stamped `ts_ms`.
    /// Returns the stored records once they are durable. A stale `expected` is
    /// [`StoreError::Conflict`] and writes nothing.
    fn append(
        &self,
        run_id: RunId,
        expected: Version,
        ts_ms: i64,
        events: Vec<Event>,
    ) -> Result<Vec<EventRecord>, StoreError>;

    /// Every event of one run, in order (empty for an unknown run).
    fn read_run(&self, run_id: RunId) -> Result<Vec<EventRecord>, StoreError>;

    /// Up to `limit` events of every run with `seq > after`, in order.
    fn read_all(&self, after: Seq, limit: usize) -> Result<Vec<EventRecord>, StoreError>;

    /// Up to `limit` events of one run with `seq > after`, in order; costs what the run has,
    /// not what the log has.
    fn read_run_after(
        &self,
        run_id: RunId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError>;

    /// The seq of the last committed event (0 when the log is empty).
    fn last_seq(&self) -> Result<Seq, StoreError>;

    /// Every event with `seq > after`: first those already stored, then live ones as they
    /// commit, with no gap and no duplicate.
    fn subscribe(&self, after: Seq) -> Result<Subscription, StoreError>;

    /// The `Run` projection of one run, as of its last committed event; costs what the run
    /// has, not what the log has.
    fn run_view(&self, run_id: RunId) -> Result<Option<RunView>, StoreError>;

    /// Stored `Run` projections, newest first.
    fn list_runs(&self, query: &RunQuery) -> Result<Vec<RunView>, StoreError>;

    /// The runs a person's reference may mean, newest first, at most `limit`: the run with
    /// that id; else those whose id starts with it; else those that have had that name (at
    /// creation or from the naming call: a name keeps meaning its run); else those whose branch
    /// it is. Empty when none.
    fn find_runs(&self, reference: &str, limit: usize) -> Result<Vec<RunView>, StoreError>;

    /// The `Step` projections of one run, in the order they started; costs what the run has
    /// (folded from its events when read, not stored).
    fn steps(&self, run_id: RunId) -> Result<Vec<StepView>, StoreError>;

    /// Drops every projection table's rows and refolds them from the log.
    fn rebuild_projections(&self) -> Result<RebuildStats, StoreError>;

    /// Whether the database answers. A file on this machine always does (a full disk is an
    /// append's error, not unreachability); a server may not, for a while.
    fn reachability(&self) -> Reachability {
        Reachability::Reachable
    }

    /// Records a node's heartbeat (inserting the node the first time).
    fn beat(&self, node: &NodeBeat) -> Result<(), StoreError>;

    /// Records that a node stopped cleanly: its claims hold no longer.
    fn leave(&self, node_id: &str) -> Result<(), StoreError>;

    /// Every node that ever beat on this log, the most recently heard first.
    fn nodes(&self) -> Result<Vec<NodeSeen>, StoreError>;
}

/// Where a page of [`EventStore::list_runs`] starts, from its query's `before`.
pub(crate) enum PageStart {
    /// No cursor: the newest runs.
    Newest,
    /// Runs older than this one, by `(created_ms, run_id)`.
    After { created_ms: i64, run_id: String },
    /// The cursor names no run: the page is empty.
    Nowhere,
}

impl PageStart {
    pub(crate) fn of(store: &dyn EventStore, query: &RunQuery) -> Result<PageStart, StoreError> {
        Ok(match query.before {
            None => PageStart::Newest,
            Some(run_id) => match store.run_view(run_id)? {
                Some(view) => PageStart::After {
                    created_ms: view.created_ms,
                    run_id: run_id.to_string(),
                },
                None => PageStart::Nowhere,
            },
        })
    }

    /// The cursor as the two query parameters both stores take (`NULL` for none).
    pub(crate) fn params(&self) -> (Option<i64>, Option<String>) {
        match self {
            PageStart::After { created_ms, run_id } => (Some(*created_ms), Some(run_id.clone())),
            PageStart::Newest | PageStart::Nowhere => (None, None),
        }
    }
}

/// One way a person's reference may name runs, in the order [`EventStore::find_runs`] tries
/// them; the first that finds any answers.
pub(crate) enum Search {
    /// Ids from `low` (included) to `high` (excluded) in byte order: the ids the reference is a
    /// prefix of, found on the run id's index rather than by a scan.
    Ids { low: String, high: String },
    /// Runs that have had the name: at creation (`RUN_CREATED`) or from the naming call
    /// (`RUN_NAMED`), so a name printed once keeps meaning its run.
    Names { name: String },
    /// Runs whose `column` (`run_branch`) is the reference.
    Column { column: &'static str, value: String },
}

/// The searches for `reference`, none when it is blank.
pub(crate) fn searches(reference: &str) -> Vec<Search> {
    let reference = reference.trim();
    if reference.is_empty() {
        return Vec::new();
    }
    let mut searches = Vec::with_capacity(3);
    // An id's prefix, in the form ids are written (lowercase hex and dashes).
    let prefix = reference.to_ascii_lowercase();
    if prefix.len() >= 4 && prefix.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        searches.push(Search::Ids {
            high: format!("{prefix}\u{7f}"),
            low: prefix,
        });
    }
    searches.push(Search::Names {
        name: reference.to_owned(),
    });
    searches.push(Search::Column {
        column: "run_branch",
        value: reference.to_owned(),
    });
    searches
}
