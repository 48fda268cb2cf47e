//! The event log on this machine, read without a daemon: `replay` and `export` open it directly;
//! `analyze`, `stats` and the worktree commands do when `source.rs` says so.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use loop_runtime::{Claim, Runtime};
use loop_store::{EventStore, SqliteStore, StoreAt};

use crate::cli::LogArgs;
use crate::error::Coded;

/// Opens an existing event log; never creates one (a typo in `--db` must not look like an
/// empty log).
pub fn open_existing(db: &Path) -> anyhow::Result<SqliteStore> {
    if !db.is_file() {
        return Err(Coded::new(
            "no_event_log",
            format!(
                "no event log at {}: pass the loopd.db file with --db",
                db.display()
            ),
        )
        .into());
    }
    SqliteStore::open(db).with_context(|| format!("cannot open the event log {}", db.display()))
}

/// Opens the log `--db` or `--store` names; a SQLite file must exist already.
pub fn open(log: &LogArgs) -> anyhow::Result<Arc<dyn EventStore>> {
    match (&log.db, &log.store) {
        (Some(db), _) | (None, Some(StoreAt::Sqlite(db))) => Ok(Arc::new(open_existing(db)?)),
        (None, Some(at)) => open_at(at),
        (None, None) => anyhow::bail!("name the event log with --db PATH or --store URL"),
    }
}

/// Opens any store; a SQLite file must exist already.
pub fn open_at(at: &StoreAt) -> anyhow::Result<Arc<dyn EventStore>> {
    match at {
        StoreAt::Sqlite(db) => Ok(Arc::new(open_existing(db)?)),
        StoreAt::Postgres(_) => at.open().context("cannot open the event log"),
    }
}

/// How a log is named in messages.
pub fn shown(log: &LogArgs) -> String {
    match (&log.db, &log.store) {
        (Some(db), _) => db.display().to_string(),
        (None, Some(at)) => at.shown(),
        (None, None) => String::new(),
    }
}

/// Runs `work` with a runtime embedded over the log at `db`, which must exist. The runtime
/// claims no run: looking at a log never starts an agent nor drives a daemon's run. A
/// postmortem `work` starts runs in it, so `work` waits for it.
pub fn embedded<T>(
    db: &Path,
    work: impl AsyncFnOnce(&Runtime) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let data_dir = loop_runtime::default_data_dir();
    let store = open_existing(db)?;
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    tokio.block_on(async {
        let runtime = Runtime::builder()
            .store(Arc::new(store))
            .data_dir(&data_dir)
            .claim(Claim::Nothing)
            .build()?;
        let result = work(&runtime).await;
        runtime.shutdown().await;
        result
    })
}
