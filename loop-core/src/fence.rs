//! Whether a node may move a run's fence on its remote, and what an entry there means.
//!
//! A run by URL in a cluster has a fence on its remote (a ref the runtime keeps): each entry
//! names a node and a version of the run's log. A node that is about to change who may act on
//! the run (claim it, pause it, cancel it) first moves the fence to an entry naming itself and
//! the version its event will be appended at; every push of the run's effects is atomic with
//! the fence and expects it where the pushing node left it. So once a later entry is there, the
//! remote refuses whatever an earlier holder still tries to land.
//!
//! An entry is written before its event is appended, so the log may say it never happened (the
//! append lost a race: a *phantom*) or not say yet (the append is under way, or its node died
//! before it). [`verdict`] tells which, from the run's log and whether the entry's node is
//! alive.

use crate::event::{Event, EventRecord};
use crate::ids::Version;

/// What the run's fence on the remote says: the node that moved it last, for the event it
/// appends (or appended) at `version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceEntry {
    pub node: String,
    pub version: Version,
}

/// What a node that wants to act on a run at a version may do with its fence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FenceVerdict {
    /// The fence is this node's, for this very version: take it as it is.
    Adopt,
    /// Move it to a new entry for this node (on top of what is there).
    Seize,
    /// A later claim, pause or cancel holds it: this node may land nothing more.
    Lost { node: String, version: Version },
    /// A live node moved it for an event not in the log yet: ask again shortly.
    Wait { node: String },
}

/// The verdict for `me`, wanting to act at `version` (the version its claim, pause or cancel is
/// to be appended at, or the version of the claim it drives under), given the fence's `entry`
/// (`None`: the run has no fence yet), the run's `records` and whether a node holds its lease.
pub fn verdict(
    entry: Option<&FenceEntry>,
    records: &[EventRecord],
    me: &str,
    version: Version,
    holds_lease: impl Fn(&str) -> bool,
) -> FenceVerdict {
    let Some(entry) = entry else {
        return FenceVerdict::Seize;
    };
    if entry.node == me && entry.version == version {
        return FenceVerdict::Adopt;
    }
    if entry.version < version {
        return FenceVerdict::Seize;
    }
    // The log already holds another event at the version this node means to act at: its view
    // of the run is stale, and what it would append there is refused. It must not move the
    // fence over a later entry whatever that entry's fate, or the entry's holder (appending
    // its event meanwhile) finds its fence taken by an attempt that can never land. The fault
    // suite's seed 2284228200117490255: a node stopped past its lease woke and took the fence
    // for a claim at version 2 over another node's entry at 17, which the log then took.
    if records
        .iter()
        .any(|record| record.version == version && !claimed_by(&record.event, me))
    {
        return FenceVerdict::Lost {
            node: entry.node.clone(),
            version: entry.version,
        };
    }
    match records
        .iter()
        .find(|record| record.version == entry.version)
    {
        Some(record) if happened(&record.event, &entry.node) => FenceVerdict::Lost {
            node: entry.node.clone(),
            version: entry.version,
        },
        // The entry's append lost its race: the log went on without it.
        Some(_) => FenceVerdict::Seize,
        None if entry.node != me && holds_lease(&entry.node) => FenceVerdict::Wait {
            node: entry.node.clone(),
        },
        // Its node is gone (or is this one, in an attempt that never reached the log).
        None => FenceVerdict::Seize,
    }
}

/// Whether `event` is `node`'s claim (the one a driver acts under, at its version).
fn claimed_by(event: &Event, node: &str) -> bool {
    matches!(event, Event::RunClaimed(claimed) if claimed.node_id == node)
}

/// Whether `event` is what an entry of `node` at its version was written for: that node's
/// claim, or a pause or a cancel (which carry no node: the entry's version is theirs).
fn happened(event: &Event, node: &str) -> bool {
    match event {
        Event::RunClaimed(claimed) => claimed.node_id == node,
        Event::RunPaused(_) | Event::RunCanceled(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{RunClaimed, RunPaused, RunStarted};
    use crate::ids::{RunId, Seq};

    fn record(version: u64, event: Event) -> EventRecord {
        EventRecord {
            seq: Seq(version),
            run_id: RunId::from_uuid(uuid::Uuid::nil()),
            version: Version(version),
            ts_ms: 0,
            schema: crate::event::SCHEMA,
            event,
        }
    }

    fn claim(node: &str) -> Event {
        RunClaimed {
            node_id: node.to_owned(),
            lease_ms: 2_000,
            took_over_from: None,
        }
        .into()
    }

    fn entry(node: &str, version: u64) -> FenceEntry {
        FenceEntry {
            node: node.to_owned(),
            version: Version(version),
        }
    }

    #[test]
    fn a_fence_is_seized_adopted_or_lost_as_the_log_says() {
        let log = [
            record(1, claim("a")),
            record(2, RunStarted {}.into()),
            record(3, claim("b")),
            record(4, RunPaused { reason: None }.into()),
        ];
        let alive = |_: &str| true;
        let v = Version;
        assert_eq!(verdict(None, &log, "a", v(1), alive), FenceVerdict::Seize);
        assert_eq!(
            verdict(Some(&entry("a", 1)), &log, "a", v(1), alive),
            FenceVerdict::Adopt
        );
        assert_eq!(
            verdict(Some(&entry("a", 1)), &log, "b", v(3), alive),
            FenceVerdict::Seize
        );
        // b's claim at 3 happened: a, driving under its claim at 1, has lost.
        assert_eq!(
            verdict(Some(&entry("b", 3)), &log, "a", v(1), alive),
            FenceVerdict::Lost {
                node: "b".into(),
                version: v(3)
            }
        );
        // So has b once a pause at 4 holds the fence.
        assert!(matches!(
            verdict(Some(&entry("c", 4)), &log, "b", v(3), alive),
            FenceVerdict::Lost { .. }
        ));
    }

    #[test]
    fn an_entry_the_log_never_took_is_seized_over_and_one_on_its_way_is_waited_for() {
        let log = [record(1, claim("a")), record(2, RunStarted {}.into())];
        let v = Version;
        // c seized for a claim at 2, but a's own event took version 2.
        assert_eq!(
            verdict(Some(&entry("c", 2)), &log, "a", v(1), |_| true),
            FenceVerdict::Seize
        );
        // c seized for a claim at 3, not in the log yet: wait while c lives, not once it died.
        assert_eq!(
            verdict(Some(&entry("c", 3)), &log, "a", v(1), |_| true),
            FenceVerdict::Wait { node: "c".into() }
        );
        assert_eq!(
            verdict(Some(&entry("c", 3)), &log, "a", v(1), |_| false),
            FenceVerdict::Seize
        );
        // This node's own attempt that never reached the log.
        assert_eq!(
            verdict(Some(&entry("a", 3)), &log, "a", v(4), |_| true),
            FenceVerdict::Seize
        );
        assert_eq!(
            verdict(Some(&entry("a", 5)), &log, "a", v(4), |_| true),
            FenceVerdict::Seize
        );
    }

    /// Seed 2284228200117490255 of the fault suite: a node stopped past its lease woke with its
    /// scheduler's view of the run at version 1 and took the fence for a claim at 2 over d's
    /// entry at 5 (d itself silent then, its claim's append under way), which the log took.
    #[test]
    fn a_node_whose_view_is_stale_moves_no_fence() {
        let log = [
            record(1, claim("b")),
            record(2, RunStarted {}.into()),
            record(3, claim("c")),
            record(4, RunStarted {}.into()),
        ];
        let v = Version;
        let silent = |_: &str| false;
        // d's entry at 5, its event on its way: a, at a stale 2, has lost; a node at 5 seizes.
        assert_eq!(
            verdict(Some(&entry("d", 5)), &log, "a", v(2), silent),
            FenceVerdict::Lost {
                node: "d".into(),
                version: v(5)
            }
        );
        assert_eq!(
            verdict(Some(&entry("d", 5)), &log, "a", v(5), silent),
            FenceVerdict::Seize
        );
        // An entry the log went past without (4 is another event): a stale node leaves it too.
        assert!(matches!(
            verdict(Some(&entry("d", 4)), &log, "a", v(2), silent),
            FenceVerdict::Lost { .. }
        ));
        // A driver acting under its own claim at 3 is not stale for it.
        assert_eq!(
            verdict(Some(&entry("d", 4)), &log, "c", v(3), silent),
            FenceVerdict::Seize
        );
    }
}
