//! The pure domain of `loop`: what a run is, what can happen to it, and what it looks like.
//!
//! Everything here is a function of its inputs. There is no I/O, no async runtime and no clock:
//! time arrives as milliseconds in events and commands. The state of a run is the fold of its
//! events ([`RunState::apply`]); a command becomes events through [`decide`]; every view a user
//! sees (the API's `Run` and `Step`, `report.tsv`, `summary.json`, `run.log`, `events.jsonl`)
//! is a projection in [`projection`].

pub mod account;
pub mod agent_stream;
pub mod completion;
pub mod config;
pub mod decide;
pub mod error;
pub mod event;
pub mod experiment;
pub mod fence;
pub mod ids;
pub mod layout;
pub mod naming;
pub mod plan;
pub mod policy;
pub mod postmortem;
pub mod prices;
pub mod progress;
pub mod projection;
pub mod prompt;
pub mod resume;
pub mod spec;
pub mod state;
pub mod stats;
pub mod status;
pub mod step;
pub mod time;
pub mod watchdog;
pub mod worktree_path;

pub use decide::{Command, decide};
pub use error::DomainError;
pub use event::{Event, EventRecord, EventType};
pub use ids::{RunId, Seq, StepId, Version};
pub use state::{RunState, RunStatus};
