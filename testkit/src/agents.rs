//! The stub agents in `testkit/agents/`: shell scripts that read the prompt on stdin, work on
//! the plan as an agent would, and print what the agent they stand for prints.

use std::path::{Path, PathBuf};

/// The stub `name` (`one_task.sh`, `claude_stub.sh`, …).
pub fn path(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("agents")
        .join(name);
    assert!(path.is_file(), "no stub agent {}", path.display());
    path
}

/// The stub `name` as an `agent_cmd`: `sh <path>`.
pub fn cmd(name: &str) -> String {
    format!("sh {}", path(name).display())
}
