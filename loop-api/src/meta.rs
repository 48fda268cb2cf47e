//! What every answer may carry: errors, the health check, a run's files, output frames.

use loop_core::{RunId, StepId};
use serde::{Deserialize, Serialize};

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// What went wrong, for programs: a snake_case word such as `not_found`,
    /// `illegal_transition` or `bad_request`.
    pub code: String,
}

/// `GET /health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok`, or `degraded` while the event log refuses writes.
    pub status: String,
    /// The daemon's version.
    pub version: String,
    /// Why the log refuses writes, while it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}

/// `GET /nodes`: the daemons sharing this one's event log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Nodes {
    /// Whether the log is shared (PostgreSQL); on a SQLite log the only node is this daemon.
    pub cluster: bool,
    /// How long the answering node's claims outlive its last heartbeat (each node has its
    /// own: see each node's `lease_ms`).
    pub lease_ms: u64,
    /// The most recently heard first.
    pub nodes: Vec<NodeInfo>,
}

/// One daemon of the cluster, as its heartbeats and the log show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeInfo {
    pub id: String,
    pub name: String,
    /// Where its API answers.
    pub address: String,
    /// The most runs it drives at once.
    pub capacity: u32,
    /// The runs it drove at its last heartbeat.
    pub runs: u32,
    /// The RUNNING runs whose latest claim is this node's.
    pub run_ids: Vec<RunId>,
    pub started_at: String,
    pub heartbeat_at: String,
    /// How long ago its last heartbeat was.
    pub age_ms: u64,
    /// How long its claims outlive its last heartbeat.
    pub lease_ms: u64,
    /// `alive` (its claims hold), `silent` (no heartbeat for a lease: its runs go to other
    /// nodes), `left` (it stopped cleanly) or `unproven` (its row does not prove the cluster's
    /// token: no member, whatever its heartbeat).
    pub state: String,
    /// The node that answered this request.
    pub this: bool,
}

/// `GET /accounts`: the agent accounts of the runs in the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Accounts {
    pub accounts: Vec<AccountInfo>,
    /// When each run that has not ended is expected to finish, and what binds it first.
    #[serde(default)]
    pub forecasts: Vec<Forecast>,
}

/// A run's forecast: from the log, the mean time and cost of its iterations so far times its
/// plan's tasks left, against its account's windows, their resets and the reserve it keeps, and
/// against its `max_cost_usd`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Forecast {
    pub run_id: RunId,
    /// The account its calls go to now.
    pub account: String,
    pub tasks_left: Option<u32>,
    pub iteration_ms: Option<u64>,
    pub iteration_cost_usd: Option<f64>,
    /// When it is expected to finish (absent while the log says too little, or when
    /// `max_cost_usd` stops it first).
    pub finish_ms: Option<i64>,
    pub finish: Option<String>,
    /// What binds it first, beyond its own pace: `window` (the account's window runs out
    /// before the tasks: `account`, `window`, `resets_at_ms`), `limit` (a pool run waits for
    /// an account's usage limit to reset: `account`, `until_ms`) or `max_cost`
    /// (`expected_usd`, `max_usd`).
    pub binding: Option<Binding>,
}

/// What makes a run finish later than its pace alone would, or not at all.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Binding {
    Window {
        account: String,
        window: String,
        resets_at_ms: i64,
    },
    MaxCost {
        expected_usd: f64,
        max_usd: f64,
    },
    Limit {
        account: String,
        until_ms: i64,
    },
}

/// One agent account: the runs whose calls count against it, the usage limit that holds them,
/// and what its calls cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountInfo {
    /// The run's `account` key: named, or derived from the agent and its credentials.
    pub account: String,
    /// The same, under the name `contract.md` §7 gives declared accounts.
    #[serde(default)]
    pub name: String,
    /// Its agent when the daemon declares it (`loopd --accounts`); absent for an account only
    /// the runs name.
    #[serde(default)]
    pub declared_agent: Option<String>,
    /// Every run of the account in the log.
    pub runs: Vec<RunId>,
    /// The reset time of the usage limit that holds the account, until a call succeeds after it.
    pub limited_until: Option<String>,
    pub limited_until_ms: Option<i64>,
    /// The run that met the limit, and what the agent said.
    pub limited_by: Option<RunId>,
    pub limit_reason: Option<String>,
    /// The run calling first since the reset; the others wait for its answer.
    pub probe: Option<RunId>,
    /// Usage limits met, and agent calls made, all told.
    pub limits_met: u64,
    pub calls: u64,
    /// What its calls cost on the UTC day and in the UTC month of its latest paid call.
    pub spent_day_usd: f64,
    pub spent_month_usd: f64,
    /// The rate-limit window its agent last reported: which, its state (`allowed`,
    /// `allowed_warning`, `rejected`), how much is used (0 to 1), and when it resets.
    #[serde(default)]
    pub window: Option<String>,
    #[serde(default)]
    pub window_status: Option<String>,
    #[serde(default)]
    pub window_utilization: Option<f64>,
    #[serde(default)]
    pub window_resets_at_ms: Option<i64>,
    /// Every window its agent has reported, by name (`five_hour`, `seven_day`,
    /// `seven_day_opus`, …): the last report of each, for the board's countdowns.
    #[serde(default)]
    pub windows: Vec<AccountWindow>,
    /// The limits met in a model family's own window (`opus`, `sonnet`, …): each holds only
    /// that family's calls until its reset.
    #[serde(default)]
    pub model_limits: Vec<ModelLimit>,
    /// The most calls it admits at once (`account_concurrency`), if its runs set a cap; its
    /// calls in flight; and the runs waiting for a turn (on the node answering).
    #[serde(default)]
    pub concurrency: Option<u32>,
    #[serde(default)]
    pub calls_in_flight: u32,
    #[serde(default)]
    pub turn_queue: Vec<RunId>,
}

/// One usage window of an account, as its agent last reported it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountWindow {
    pub window: String,
    /// `allowed`, `allowed_warning` or `rejected`.
    pub status: String,
    /// How much is used, 0 to 1, when the agent said.
    pub utilization: Option<f64>,
    pub resets_at_ms: Option<i64>,
    /// When it was reported (the log's time of the step that carried it).
    pub seen_ms: i64,
}

/// A usage limit met in one model family's window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelLimit {
    pub family: String,
    pub until_ms: i64,
    pub window: Option<String>,
    pub reason: String,
}

/// One file of a run directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Artifact {
    /// Path relative to the run directory, `/`-separated.
    pub name: String,
    pub bytes: u64,
}

/// `{"artifacts": [Artifact]}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArtifactsEnvelope {
    pub artifacts: Vec<Artifact>,
}

/// The data of an output frame: a piece of a step's output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutputChunk {
    pub step_id: StepId,
    /// Byte offset of `content` in the step's output.
    pub offset: u64,
    pub content: String,
}
