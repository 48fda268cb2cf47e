//! Which nodes of the log a node trusts: those that prove they hold the cluster's token.
//!
//! A row in the store's `nodes` table is written by whoever can reach the database, so a row
//! alone proves nothing: a node started with another token, advertising a listener of someone
//! else's, was listed alive, claimed runs, and was sent client requests with the cluster's
//! token in their `Authorization` header. Each node therefore signs its heartbeat: its proof is
//! `HMAC-SHA256(token, "loop-node-v1\n" len(id) id len(address) address)` in hex (lengths as
//! 8 bytes, big-endian), and every other node checks it
//! with its own token. A node whose proof does not check is not a member: it is shown
//! `unproven` and nothing is proxied to it, nor the token sent with anything. (Its claims are
//! left to it while it beats: they are the log's, see `may_take` in the cluster module.)
//!
//! The proof binds the address, so a copy of a member's row names the member's own address:
//! whoever copies it gets nothing sent their way.

use hmac::{Hmac, KeyInit, Mac};
use loop_store::NodeBeat;

type Sha256Mac = Hmac<sha2_for_hmac::Sha256>;

/// The key every node of a cluster shares: the cluster's token.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey(std::sync::Arc<[u8]>);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself.
        f.write_str("ClusterKey(..)")
    }
}

impl ClusterKey {
    /// The key of the cluster whose token is `token`.
    pub fn new(token: &str) -> ClusterKey {
        ClusterKey(std::sync::Arc::from(token.as_bytes()))
    }

    fn mac(&self, node_id: &str, address: &str) -> Sha256Mac {
        let mut mac = Sha256Mac::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(b"loop-node-v1\n");
        // Each part after its length, so no id and address run into another pair.
        for part in [node_id, address] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac
    }

    /// The proof a node with this key writes in its heartbeat.
    pub fn prove(&self, node_id: &str, address: &str) -> String {
        self.mac(node_id, address)
            .finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// Whether `beat` proves this key, compared in constant time.
    pub fn proves(&self, beat: &NodeBeat) -> bool {
        let Some(tag) = from_hex(&beat.proof) else {
            return false;
        };
        self.mac(&beat.node_id, &beat.address)
            .verify_slice(&tag)
            .is_ok()
    }
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(id: &str, address: &str, proof: String) -> NodeBeat {
        NodeBeat {
            node_id: id.to_owned(),
            name: id.to_owned(),
            address: address.to_owned(),
            capacity: 1,
            runs: 0,
            lease_ms: 15_000,
            proof,
        }
    }

    #[test]
    fn a_proof_holds_for_its_key_id_and_address_only() {
        let key = ClusterKey::new("the cluster's token");
        let proof = key.prove("a", "http://10.0.0.1:7700");
        assert_eq!(proof.len(), 64);
        assert!(key.proves(&beat("a", "http://10.0.0.1:7700", proof.clone())));
        // Another token, another node, another address, or no proof: nothing.
        let other = ClusterKey::new("another token");
        assert!(!other.proves(&beat("a", "http://10.0.0.1:7700", proof.clone())));
        assert!(!key.proves(&beat("b", "http://10.0.0.1:7700", proof.clone())));
        assert!(!key.proves(&beat("a", "http://10.0.0.2:7700", proof.clone())));
        assert!(!key.proves(&beat("a", "http://10.0.0.1:7700", String::new())));
        assert!(!key.proves(&beat("a", "http://10.0.0.1:7700", "zz".repeat(32))));
        assert!(!key.proves(&beat("a", "http://10.0.0.1:7700", proof[..63].to_owned())));
        // The lengths keep the id and the address apart.
        assert_ne!(key.prove("a\nb", "c"), key.prove("a", "b\nc"));
        assert_eq!(format!("{key:?}"), "ClusterKey(..)");
    }
}
