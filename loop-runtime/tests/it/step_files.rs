//! A step's files (its log, tail, raw stream and prompt, and their mirror) hold what they
//! held before fewer of them were made: a tail or raw stream equal to its log is the log under
//! another name, a prompt is written over in place, a raw stream exists only when the agent
//! printed.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use loop_core::RunStatus;
use loop_core::event::{ArtifactWritten, Event};
use sha2::{Digest, Sha256};

use crate::support::{agent, finish, request, runtime, scratch};

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn inode(path: &Path) -> (u64, u64) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (meta.dev(), meta.ino())
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The last 200 lines of `log`, as the tail file keeps them.
fn last_lines(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let from = lines.len().saturating_sub(200);
    lines[from..]
        .iter()
        .map(|line| format!("{line}\n"))
        .collect()
}

/// Runs a plan of two tasks with `agent_cmd`, reviewer and one verification command; the
/// run's two directories and its last record of every artifact path.
async fn run(
    agent_cmd: String,
) -> (
    crate::support::Scratch,
    PathBuf,
    PathBuf,
    Vec<ArtifactWritten>,
) {
    let scratch = scratch(2);
    let runtime = runtime(&scratch);
    let mut request = request(
        &scratch,
        "one_task.sh",
        &[("verify_cmds", "test -f work.txt")],
    );
    request.config.insert("agent_cmd".to_owned(), agent_cmd);
    let run = runtime.submit(request).await.expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let mut last: BTreeMap<String, ArtifactWritten> = BTreeMap::new();
    for record in runtime.events(run.id).await.expect("events") {
        if let Event::ArtifactWritten(artifact) = record.event {
            last.insert(artifact.path.clone(), artifact);
        }
    }
    let dir = scratch
        .repo()
        .join("logs/loop")
        .join(format!("run-{}", run.id));
    let mirror = scratch
        .data_dir()
        .join("runs")
        .join(format!("run-{}", run.id));
    runtime.shutdown().await;
    (scratch, dir, mirror, last.into_values().collect())
}

/// Every recorded file holds the bytes of its last record, in both directories.
fn assert_recorded_files_hold_their_bytes(artifacts: &[ArtifactWritten]) {
    assert!(artifacts.len() > 10, "{artifacts:?}");
    for artifact in artifacts {
        let bytes =
            std::fs::read(&artifact.path).unwrap_or_else(|e| panic!("{}: {e}", artifact.path));
        assert_eq!(bytes.len() as u64, artifact.bytes, "{}", artifact.path);
        assert_eq!(sha256(&bytes), artifact.sha256, "{}", artifact.path);
    }
}

#[tokio::test]
async fn a_short_log_is_its_own_tail_and_raw_stream_and_every_recorded_file_holds_its_bytes() {
    let (_scratch, dir, mirror, artifacts) = run(agent("one_task.sh")).await;
    assert_recorded_files_hold_their_bytes(&artifacts);
    for stem in [
        "iter-01-impl",
        "iter-01-review",
        "iter-02-impl",
        "iter-02-verify",
    ] {
        let log = dir.join(format!("{stem}.log"));
        let tail = dir.join(format!("{stem}.tail.txt"));
        let text = read(&log);
        assert!(!text.is_empty(), "{stem}");
        assert_eq!(read(&tail), last_lines(&text), "{stem}: the tail");
        assert_eq!(inode(&tail), inode(&log), "{stem}: one file, two names");
        // The mirror holds the same, by link (an agent step's tail is recorded; a
        // verification's is not, and stays in the workspace).
        if !stem.ends_with("verify") {
            assert_eq!(inode(&mirror.join(format!("{stem}.tail.txt"))), inode(&log));
        }
    }
    // The agent printed only on stdout: its raw stream is what the log holds.
    for stem in ["iter-01-impl", "iter-01-review"] {
        let (log, raw) = (
            dir.join(format!("{stem}.log")),
            dir.join(format!("{stem}.jsonl")),
        );
        assert_eq!(read(&raw), read(&log), "{stem}");
        assert!(read(&raw).ends_with("\n"), "{stem}");
        assert_eq!(inode(&raw), inode(&log), "{stem}: one file, two names");
    }
    // A verification is no agent: no raw stream.
    assert!(!dir.join("iter-01-verify.jsonl").exists());
    // The prompt holds the last implementation prompt sent, in both directories.
    let prompt = read(&dir.join("prompt.txt"));
    assert!(prompt.contains("specs/feature.md"), "{prompt}");
    assert_eq!(read(&mirror.join("prompt.txt")), prompt);
}

#[tokio::test]
async fn a_long_log_with_stderr_keeps_a_tail_and_a_raw_stream_of_their_own() {
    // 250 lines on stderr before the answer: the log has them, the raw stream (stdout) not.
    let agent_cmd = format!("seq 1 250 >&2; {}", agent("one_task.sh"));
    let (_scratch, dir, mirror, artifacts) = run(agent_cmd).await;
    assert_recorded_files_hold_their_bytes(&artifacts);
    let (log, tail, raw) = (
        dir.join("iter-01-impl.log"),
        dir.join("iter-01-impl.tail.txt"),
        dir.join("iter-01-impl.jsonl"),
    );
    let text = read(&log);
    assert!(text.starts_with("1\n2\n3\n"), "{text}");
    assert!(text.lines().count() > 250);
    assert_eq!(read(&tail), last_lines(&text));
    assert_ne!(inode(&tail), inode(&log));
    assert_eq!(
        read(&raw),
        "Implemented the next task.\nDONE: task 1\n",
        "only stdout"
    );
    assert_ne!(inode(&raw), inode(&log));
    assert_eq!(read(&mirror.join("iter-01-impl.jsonl")), read(&raw));
    assert_eq!(read(&mirror.join("iter-01-impl.tail.txt")), read(&tail));
}
