//! Cluster nodes as the store knows them: each node's last heartbeat.
//!
//! A heartbeat is not run state: it is a fact of a process now, so it is a row that each beat
//! overwrites, never an event (a log that grew with time while nothing happened would be
//! replayed for ever). What the log records is a run's claim (`RUN_CLAIMED`); whether that
//! claim still holds is read here: a claim lasts while its node's heartbeat is younger than the
//! claim's lease.

use serde::{Deserialize, Serialize};

/// What a node says about itself at each heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeBeat {
    pub node_id: String,
    /// A name for people (the host name, or `--node-name`).
    pub name: String,
    /// Where its API answers.
    pub address: String,
    /// The most runs it drives at once.
    pub capacity: u32,
    /// The runs it drives now.
    pub runs: u32,
    /// How long its claims outlive its last heartbeat: each node's own, so nodes started with
    /// different leases still agree on when one's claims end.
    pub lease_ms: u64,
    /// What proves the node holds the cluster's token: an HMAC of its id and address under
    /// the token, which every other node checks (`loop-runtime`'s cluster). A row without
    /// it (`""`) proves nothing.
    #[serde(default)]
    pub proof: String,
}

/// A node as the store last heard from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSeen {
    #[serde(flatten)]
    pub beat: NodeBeat,
    pub started_ms: i64,
    pub heartbeat_ms: i64,
    /// How long ago the last heartbeat was, by the store's clock (one clock for every node, so
    /// two machines whose clocks disagree still agree on which node is silent).
    pub age_ms: u64,
    /// The node said goodbye (a clean shutdown): its claims hold no longer.
    pub left: bool,
}

impl NodeSeen {
    /// Whether this node's claims still hold.
    pub fn holds_lease(&self) -> bool {
        !self.left && self.age_ms < self.beat.lease_ms
    }
}
