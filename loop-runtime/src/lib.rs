//! The loop engine as a library.
//!
//! A [`Runtime`] runs many loops at once over one event log: each run is implementation, review
//! and verification, iteration after iteration, in its working tree, until the plan is done or
//! a limit stops it. Every decision and outcome is an event in the log, and the runtime reads a
//! run's state only by folding its events, so a restarted runtime continues where the log says.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use loop_runtime::{Runtime, RunRequest};
//! use loop_store::SqliteStore;
//!
//! let store = Arc::new(SqliteStore::open("loop.db")?);
//! let runtime = Runtime::builder().store(store).data_dir("loop-data").build()?;
//! let run = runtime
//!     .submit(RunRequest {
//!         repo_url: None,
//!         workspace_root: "/path/to/repo".into(),
//!         spec_path: "specs/feature.md".into(),
//!         ..RunRequest::default()
//!     })
//!     .await?;
//! let finished = runtime.wait(run.id).await?;
//! println!("{:?}", finished.status);
//! # Ok(()) }
//! ```

mod accounts;
pub mod agent;
mod agent_call;
mod artifacts;
pub mod clock;
mod cluster;
mod driver;
mod error;
mod fencing;
mod git;
mod journal;
pub mod lock;
mod merge;
mod notify;
mod output;
mod pauses;
mod postmortem;
pub mod process;
mod prompting;
pub mod raw_stream;
mod repos;
mod request;
mod review;
mod run_context;
mod runtime;
mod scheduler;
mod scratch;
mod services;
mod stats;
pub mod step_output;
mod storage_full;
mod stream;
mod verify;
pub mod worktree;

pub use accounts::DeclaredAccount;
pub use artifacts::confined;
pub use cluster::{ClusterKey, Node};
pub use error::RuntimeError;
pub use journal::{AppendLatency, StoreTrouble};
pub use output::OutputStream;
pub use postmortem::{AnalysisFile, PostmortemReport, PostmortemState};
pub use prompting::preview_prompt;
pub use request::{RunRequest, default_data_dir, slug, workspace_config};
pub use review::{
    DiffCommit, FileDiff, GcFailure, GcReport, MergeOutcome, PullRequest, RunDiff, RunWorktree,
    ScrapOutcome,
};
pub use runtime::{AccountSummary, Runtime, RuntimeBuilder};
pub use scheduler::{Claim, QueuePolicy};
pub use step_output::Chunk;
pub use stream::EventStream;
