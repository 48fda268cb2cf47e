//! The event log of `loop`: the only authoritative record of every run.
//!
//! [`EventStore`] is the narrow interface the runtime uses: append with an expected version,
//! read a run, read everything after a position, subscribe from a position with no gap, and
//! read or rebuild the projection tables. [`SqliteStore`] implements it on one SQLite file with
//! a single group-committing writer, the embedded default; [`PgStore`] on a PostgreSQL database
//! that many `loopd` nodes share.
//!
//! Only this crate knows SQL.

mod append;
mod error;
mod location;
mod node;
mod postgres;
mod record;
mod replay;
mod sqlite;
mod store;
mod subscription;

pub use error::StoreError;
pub use location::StoreAt;
pub use node::{NodeBeat, NodeSeen};
pub use postgres::PgStore;
pub use replay::{Difference, ReplayReport, replay};
pub use sqlite::SqliteStore;
pub use store::{EventStore, Reachability, RebuildStats, RunQuery};
pub use subscription::Subscription;
