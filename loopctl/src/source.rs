//! Where `stats`, `analyze`, `worktrees`, `worktree-rm` and `gc` get their answers: the daemon
//! at `--addr` when one answers there, else an event log on this machine.
//!
//! The decision, made for a person who typed one of these commands:
//!
//! - `--db PATH`: that log file, and never a daemon. The explicit offline mode (a log copied
//!   from another machine, a daemon that is stopped on purpose).
//! - A daemon answers at the address: that daemon, as for every other command, so `--addr`
//!   means the same everywhere.
//! - Nothing answers at an address the person gave (`--addr` or `LOOPD_ADDR`): an error that
//!   names both ways on. Reading a local log instead would show another daemon's runs as that
//!   one's, which is the mistake `--addr` is there to avoid.
//! - Nothing answers at the default address: the default data dir's `loopd.db`, with a note on
//!   stderr saying so. That is where a daemon of this account keeps its log, so a person whose
//!   daemon is stopped still gets their figures and worktrees, and is told where they came from.
//!   The default address is probed briefly (a stopped daemon refuses at once), not for the
//!   5 s a daemon command waits.

use std::path::PathBuf;
use std::time::Duration;

use loop_client::ClientError;
use loop_client::blocking::Client;

use crate::connect::{Daemon, PROBE_FOR};
use crate::error::Coded;
use crate::output::Output;

/// How long the default address is given to answer before the local log is read instead.
const DEFAULT_PROBE: Duration = Duration::from_secs(1);

/// Where a command's answers come from.
#[derive(Debug)]
pub enum Source {
    /// A daemon that answered.
    Daemon(Client),
    /// An event log file, read with a runtime embedded over it.
    Log(PathBuf),
}

/// The source for a command given `db` (its `--db`), by the rules above.
pub fn resolve(daemon: &Daemon, db: Option<PathBuf>, out: &Output) -> anyhow::Result<Source> {
    if let Some(db) = db {
        return Ok(Source::Log(db));
    }
    let limit = if daemon.chosen() {
        PROBE_FOR
    } else {
        DEFAULT_PROBE
    };
    match daemon.probe(limit) {
        Ok(client) => Ok(Source::Daemon(client)),
        Err(unreachable @ ClientError::Unreachable { .. }) if daemon.chosen() => Err(Coded::like(
            &unreachable,
            format!(
                "no loopd answers at {} (given by --addr or LOOPD_ADDR): start it, or pass \
                 --db PATH to read an event log (a loopd.db file) without a daemon",
                daemon.addr()
            ),
        )
        .into()),
        Err(ClientError::Unreachable { .. }) => {
            let db = loop_runtime::default_data_dir().join("loopd.db");
            if !db.is_file() {
                return Err(Coded::new(
                    "no_event_log",
                    format!(
                        "no loopd answers at {}, and there is no event log at {}: start loopd \
                         (or pass --addr of a running one), or pass --db PATH with a loopd.db file",
                        daemon.addr(),
                        db.display()
                    ),
                )
                .into());
            }
            out.note(&format!(
                "loopctl: no loopd answers at {}; reading the event log {} directly (pass --addr \
                 for a daemon elsewhere, --db for another log)",
                daemon.addr(),
                db.display()
            ));
            Ok(Source::Log(db))
        }
        Err(other) => Err(other.into()),
    }
}
