//! What the runtime's operations can fail with.

use loop_core::config::ConfigError;
use loop_core::event::MergeCode;
use loop_core::{DomainError, RunId};
use loop_store::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The command is illegal for the run as it stands (the message names the state).
    #[error("{0}")]
    Domain(#[from] DomainError),
    #[error("no run {0}")]
    UnknownRun(RunId),
    /// No run is named so (by id, id prefix, name or branch).
    #[error("no run matches {reference:?} (an id, an id prefix, a name or a branch)")]
    NoMatch { reference: String },
    /// Several runs are named so; `runs` are they, newest first.
    #[error("{reference:?} names {} runs: {}; use more of an id", runs.len(), runs.iter().map(|r| format!("{} ({})", r.id, r.name)).collect::<Vec<_>>().join(", "))]
    Ambiguous {
        reference: String,
        runs: Vec<loop_core::projection::RunView>,
    },
    #[error("the log of run {run_id} does not fold: {error}")]
    CorruptRun { run_id: RunId, error: DomainError },
    #[error("run {run_id} kept changing under this command; try again")]
    Busy { run_id: RunId },
    /// Another cluster node claimed the run: this one may record nothing more of it.
    #[error("run {run_id} is claimed by node {node}")]
    Fenced { run_id: RunId, node: String },
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// A value of the request is wrong (the field and why).
    #[error("{what}: {reason}")]
    InvalidRequest { what: String, reason: String },
    /// Something the request names does not exist (a workspace, spec, plan or config file).
    #[error("{what}: {reason}")]
    Missing { what: String, reason: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A merge on demand did not land (a conflict, a failing check, a moved target); the
    /// target is where it was; `code` says why.
    #[error("the merge of run {run_id} did not land ({code}): {detail}")]
    MergeFailed {
        run_id: RunId,
        code: MergeCode,
        detail: String,
    },
    /// The plan has no task left to do: a run would only spend money to say so.
    #[error("every task of {plan} is done ({tasks} of {tasks}): there is nothing to run")]
    PlanComplete { plan: String, tasks: u32 },
    #[error("the runtime is shutting down")]
    Shutdown,
}
