//! Why the log refused or failed an operation.

use std::path::PathBuf;

use loop_core::event::DecodeError;
use loop_core::{RunId, Seq, Version};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// Another writer appended to the run first; nothing was written.
    #[error("run {run_id} is at version {actual}, not {expected}: another writer appended first")]
    Conflict {
        run_id: RunId,
        expected: Version,
        actual: Version,
    },
    #[error("append to run {run_id} refused: {reason}")]
    InvalidAppend { run_id: RunId, reason: String },
    #[error("{path} is not a loop event log: {reason}")]
    NotOurs { path: PathBuf, reason: String },
    #[error(
        "{path} was written by a newer loop (schema version {found}; this build knows up to {supported}): upgrade loop to open it"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("{path}: event seq {seq} of run {run_id} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        seq: Seq,
        run_id: String,
        #[source]
        source: DecodeError,
    },
    #[error("{path}: stored projection of {what} is corrupt: {source}")]
    CorruptProjection {
        path: PathBuf,
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {action}: {source}")]
    Sqlite {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{at}: {action}: {source}")]
    Postgres {
        /// The database, without its password.
        at: PathBuf,
        action: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    /// The database cannot be reached just now; the store is reconnecting by itself and
    /// refuses calls until it has (see [`crate::Reachability`]).
    #[error("{at}: the database is unreachable: {reason}")]
    Unreachable { at: PathBuf, reason: String },
    #[error("{path}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The write transaction failed as a whole (disk full, database read-only, …); nothing of
    /// it is stored.
    #[error("{path}: write failed, nothing was stored: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("the event log is closed")]
    Closed,
}

impl StoreError {
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }

    /// The log cannot take writes or answer reads for now (a full disk, a read-only or locked
    /// file, an I/O error); the same request may succeed later. Conflicts, refused appends and
    /// corrupt data are not.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Write { .. }
                | StoreError::Io { .. }
                | StoreError::Sqlite { .. }
                | StoreError::Postgres { .. }
                | StoreError::Unreachable { .. }
        )
    }
}
