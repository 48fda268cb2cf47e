//! This daemon as a cluster node: who it is, kept in its data dir so a restart is the same node.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use loop_runtime::{ClusterKey, Node};

/// The file in the data dir that holds the node's id.
const ID_FILE: &str = "node-id";

/// The node this daemon is: its id from the data dir (made the first time), a name (given, or
/// the host's), the address other nodes and people reach its API at, and the cluster's token
/// it proves itself with.
pub fn identity(
    data_dir: &Path,
    name: Option<&str>,
    address: String,
    lease: Duration,
    key: ClusterKey,
) -> anyhow::Result<Node> {
    let path = data_dir.join(ID_FILE);
    let id = match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => text.trim().to_owned(),
        Ok(_) => anyhow::bail!(
            "{} is empty; delete it to get a new node id",
            path.display()
        ),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let id = uuid::Uuid::new_v4().to_string();
            std::fs::write(&path, format!("{id}\n"))
                .with_context(|| format!("cannot write {}", path.display()))?;
            id
        }
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", path.display()));
        }
    };
    let name = match name {
        Some(name) => name.to_owned(),
        None => nix::unistd::gethostname()
            .map(|host| host.to_string_lossy().into_owned())
            .unwrap_or_else(|_| id.clone()),
    };
    Ok(Node {
        id,
        name,
        address,
        lease,
        key,
    })
}

/// Refuses an address other nodes could not reach this node at: one that is not an
/// `http(s)://` URL, or whose host is unspecified (`0.0.0.0`, `[::]`, what listening on every
/// interface gives when no `--advertise` is set).
pub fn check_advertised(address: &str) -> anyhow::Result<()> {
    let Some(rest) = address
        .strip_prefix("http://")
        .or_else(|| address.strip_prefix("https://"))
    else {
        anyhow::bail!(
            "--advertise {address:?} is not an http:// or https:// URL: give the URL other nodes \
             reach this node's API at"
        );
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = crate::host::split(authority).0;
    let unspecified = host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified());
    if host.is_empty() || unspecified {
        anyhow::bail!(
            "this node would advertise {address}, which no other node can reach: pass \
             --advertise http://<this machine's address or name>:<port> (or LOOPD_ADVERTISE)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_keeps_its_id_across_restarts_and_an_empty_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let lease = Duration::from_secs(15);
        let key = ClusterKey::new("t");
        let first = identity(dir.path(), Some("a"), "http://x".into(), lease, key.clone()).unwrap();
        let again = identity(dir.path(), None, "http://y".into(), lease, key.clone()).unwrap();
        assert_eq!(first.id, again.id);
        assert_eq!(first.name, "a");
        assert!(!again.name.is_empty());
        std::fs::write(dir.path().join(ID_FILE), "\n").unwrap();
        let error = identity(dir.path(), None, String::new(), lease, key).unwrap_err();
        assert!(error.to_string().contains("node-id is empty"), "{error}");
    }

    #[test]
    fn an_unspecified_or_odd_address_is_not_advertised() {
        for good in [
            "http://10.0.0.7:7700",
            "https://loop.example",
            "http://[fd00::1]:80/",
        ] {
            assert!(check_advertised(good).is_ok(), "{good}");
        }
        for bad in [
            "http://0.0.0.0:7700",
            "http://[::]:7700",
            "10.0.0.7:7700",
            "ftp://x",
            "http://",
        ] {
            let error = check_advertised(bad).unwrap_err().to_string();
            assert!(error.contains("--advertise"), "{bad}: {error}");
        }
    }
}
