//! The notifier's book in `<data dir>/notify/`: its cursor, the deliveries made past it
//! (`deliveries.jsonl`), and the lock that keeps one notifier per data dir (see the module
//! above for why this state lives beside the log, not in it).

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use loop_core::{RunId, Seq};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::Kind;
use super::channels::Channel;

/// How a delivery ended, as `deliveries.jsonl` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Status {
    /// The receiver took it (the command exited 0, the webhook answered 2xx).
    Delivered,
    /// Every attempt failed; `error` says how the last one did.
    Failed,
    /// A status of a newer build, in its `deliveries.jsonl`.
    #[serde(other)]
    Unknown,
}

/// One delivery's outcome, a line of `deliveries.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Delivery {
    pub(super) seq: Seq,
    pub(super) run_id: RunId,
    #[serde(rename = "type")]
    pub(super) event_type: String,
    pub(super) kind: Kind,
    pub(super) channel: Channel,
    pub(super) status: Status,
    pub(super) attempts: u32,
    pub(super) at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<String>,
}

/// Deliveries recorded past the cursor, by (seq, channel).
pub(super) type Done = HashSet<(Seq, Channel)>;

/// The notifier's state on disk.
pub(super) struct Book {
    pub(super) dir: PathBuf,
    pub(super) cursor: Seq,
    pub(super) dirty: bool,
    pub(super) done: Done,
}

impl Book {
    /// Reads the cursor and the deliveries past it; `None` for the cursor of a new data dir.
    pub(super) fn load(dir: &Path) -> std::io::Result<(Option<Seq>, Done)> {
        let cursor = match std::fs::read_to_string(dir.join("cursor")) {
            Ok(text) => text.trim().parse().ok().map(Seq),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(error),
        };
        let mut done = HashSet::new();
        if let Ok(text) = std::fs::read_to_string(dir.join("deliveries.jsonl")) {
            for line in text.lines() {
                if let Ok(delivery) = serde_json::from_str::<Delivery>(line)
                    && cursor.is_none_or(|cursor| delivery.seq > cursor)
                {
                    done.insert((delivery.seq, delivery.channel));
                }
            }
        }
        Ok((cursor, done))
    }

    pub(super) fn is_done(&self, seq: Seq, channel: Channel) -> bool {
        self.done.contains(&(seq, channel))
    }

    pub(super) fn record(&mut self, delivery: &Delivery) -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(self.dir.join("deliveries.jsonl"))?;
        let mut line = serde_json::to_string(delivery).map_err(std::io::Error::other)?;
        line.push('\n');
        file.write_all(line.as_bytes())?;
        file.sync_data()?;
        self.done.insert((delivery.seq, delivery.channel));
        Ok(())
    }

    pub(super) fn advance(&mut self, seq: Seq) {
        self.cursor = seq;
        self.dirty = true;
    }

    /// Writes the cursor (atomically: a new file renamed over the old).
    pub(super) fn save(&mut self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let fresh = self.dir.join("cursor.new");
        std::fs::write(&fresh, format!("{}\n", self.cursor))?;
        std::fs::rename(&fresh, self.dir.join("cursor"))?;
        let cursor = self.cursor;
        self.done.retain(|(seq, _)| *seq > cursor);
        self.dirty = false;
        Ok(())
    }
}

/// Takes the data dir's notifier lock; `None` while another process holds it.
pub(super) fn try_lock(dir: &Path) -> std::io::Result<Option<Flock<std::fs::File>>> {
    std::fs::create_dir_all(dir)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join("lock"))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(std::io::Error::from(errno)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_of_a_newer_build_still_count_as_done_and_names_keep_their_text() {
        let dir = tempfile::tempdir().unwrap();
        let run_id = RunId::from_uuid(uuid::Uuid::nil());
        let line = |seq: u64, kind: &str, channel: &str, status: &str| {
            format!(
                r#"{{"seq":{seq},"run_id":"{run_id}","type":"RUN_FAILED","kind":"{kind}","channel":"{channel}","status":"{status}","attempts":1,"at_ms":5}}"#
            )
        };
        let text = [
            line(3, "run_failed", "cmd", "delivered"),
            line(4, "run_paused", "webhook", "failed"),
            line(5, "merge_conflict", "webhook", "bounced"),
        ]
        .join("\n");
        std::fs::write(dir.path().join("deliveries.jsonl"), text).unwrap();
        let (cursor, done) = Book::load(dir.path()).unwrap();
        assert_eq!(cursor, None);
        let expected: Done = [
            (Seq(3), Channel::Cmd),
            (Seq(4), Channel::Webhook),
            (Seq(5), Channel::Webhook),
        ]
        .into_iter()
        .collect();
        assert_eq!(done, expected);

        for kind in [
            Kind::RunCompleted,
            Kind::RunFailed,
            Kind::RunCanceled,
            Kind::UsageLimitWait,
            Kind::AccountBudgetWait,
            Kind::WatchdogGaveUp,
            Kind::MergeConflict,
        ] {
            let written = serde_json::to_string(&kind).unwrap();
            assert_eq!(written, format!("{:?}", kind.as_str()));
            assert_eq!(serde_json::from_str::<Kind>(&written).unwrap(), kind);
        }
        assert_eq!(
            serde_json::to_string(&Status::Delivered).unwrap(),
            r#""delivered""#
        );
    }
}
