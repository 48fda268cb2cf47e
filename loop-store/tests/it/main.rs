//! The event log's behaviour through its public API, on real SQLite files in temp dirs and, in
//! `conformance`, on a real PostgreSQL server too.
//!
//! Runs and their events come from `loop_core::decide` (see [`driver`]), so every event a test
//! appends is one the domain allows where it stands, and `replay` can check the log as a whole.

mod append;
mod bad_input;
mod conformance;
mod crash;
mod driver;
mod durability;
mod group_commit;
mod migrate;
mod pg_rebuild;
mod projections;
mod read;
mod reconnect;
mod rng;
mod subscribe;

use std::path::PathBuf;

use loop_store::SqliteStore;
use tempfile::TempDir;

/// A fresh store in its own temp dir; the dir lives as long as the returned guard.
pub fn temp_store() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("create a temp dir");
    let store = SqliteStore::open(db_path(&dir)).expect("open a fresh store");
    (dir, store)
}

/// Where [`temp_store`] keeps the database in `dir`.
pub fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("loop.db")
}

/// A second, raw connection to a store's file, for changing it behind the store's back.
pub fn raw_connection(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("open a raw connection");
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .expect("set a busy timeout");
    conn
}
