//! This daemon as a cluster node: who it is, kept in its data dir so a restart is the same node.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use loop_runtime::Node;

/// The file in the data dir that holds the node's id.
const ID_FILE: &str = "node-id";

/// The node this daemon is: its id from the data dir (made the first time), a name (given, or
/// the host's), and the address other nodes and people reach its API at.
pub fn identity(
    data_dir: &Path,
    name: Option<&str>,
    address: String,
    lease: Duration,
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_keeps_its_id_across_restarts_and_an_empty_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let lease = Duration::from_secs(15);
        let first = identity(dir.path(), Some("a"), "http://x".into(), lease).unwrap();
        let again = identity(dir.path(), None, "http://y".into(), lease).unwrap();
        assert_eq!(first.id, again.id);
        assert_eq!(first.name, "a");
        assert!(!again.name.is_empty());
        std::fs::write(dir.path().join(ID_FILE), "\n").unwrap();
        let error = identity(dir.path(), None, String::new(), lease).unwrap_err();
        assert!(error.to_string().contains("node-id is empty"), "{error}");
    }
}
