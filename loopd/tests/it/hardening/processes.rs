//! Processes that would outlive their run: an agent's tools after the daemon is killed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{repo, run_body, run_file, start_daemon, submit, wait_for_end};

use super::children_with_arg;

/// The pid's process is alive (a zombie is not).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("X");
            !matches!(state, "Z" | "X")
        }
        Err(_) => false,
    }
}

/// A repository for the orphan maker stub (`testkit/agents/orphan_maker.sh`): `rounds` calls
/// that leave a tool behind and hang; its marker files stay out of the commits that count.
fn orphan_repo(dir: &Path, rounds: u32) -> PathBuf {
    let repo = repo(dir, 2);
    std::fs::write(repo.join(".orphan-rounds"), rounds.to_string()).expect("rounds");
    std::fs::write(repo.join(".gitignore"), "logs/\n.orphan-rounds\n").expect("ignore");
    repo
}

/// The agent's and its tool's pids of the orphan maker's call `round`, once it has started
/// (within 30 s).
fn round_pids(repo: &Path, data: &Path, id: &str, round: u32) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(run_file(repo, data, id, "pids")).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|line| line.starts_with(&format!("{round} ")))
        {
            return line
                .split_whitespace()
                .skip(1)
                .map(|pid| pid.parse().expect("pid"))
                .collect();
        }
        assert!(Instant::now() < deadline, "round {round} never started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Without a daemon started again on its data dir (a cluster node that died stays dead): the
/// agent and the tool it left in the background die with the daemon, and the tool's late
/// commit never happens.
#[test]
fn an_agent_s_tools_die_with_a_killed_daemon_that_nobody_restarts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = orphan_repo(dir.path(), 1);
    let data = dir.path().join("data");
    let mut daemon = start_daemon(&data, &[], &[]);
    let body = run_body(&repo, "orphan_maker.sh", json!({}));
    let id = submit(&daemon, &body);
    let mut pids = round_pids(&repo, &data, &id, 1);
    // One reaper for the daemon, whatever the number of children: its own child.
    let reapers = children_with_arg(daemon.pid() as i32, "--loop-runtime-reaper");
    assert_eq!(reapers.len(), 1, "the daemon's reapers: {reapers:?}");
    pids.extend(&reapers);
    daemon.kill();
    let deadline = Instant::now() + Duration::from_secs(3);
    while pids.iter().any(|pid| alive(*pid)) {
        assert!(
            Instant::now() < deadline,
            "alive 3 s after the daemon was killed: {:?}",
            pids.iter().filter(|pid| alive(**pid)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The tool would have committed 4 s after it started.
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        !repo.join("late.txt").exists(),
        "a tool of the dead daemon wrote late.txt"
    );
}

#[test]
fn no_agent_outlives_a_killed_daemon_and_no_orphan_commits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = orphan_repo(dir.path(), 3);
    let data = dir.path().join("data");
    let mut daemon = start_daemon(&data, &[], &[]);
    let mut body = run_body(&repo, "orphan_maker.sh", json!({}));
    body.as_object_mut().expect("object").remove("no_worktree");
    let id = submit(&daemon, &body);
    let mut killed_pids: Vec<i32> = Vec::new();
    for round in 1..=3 {
        // Wait for this round's agent and its tool.
        let pids = round_pids(&repo, &data, &id, round);
        daemon.kill();

        killed_pids.extend(&pids);
        // The next daemon kills what the dead one left, before anything runs again.
        daemon = start_daemon(&data, &[], &[]);
        let deadline = Instant::now() + Duration::from_secs(3);
        while killed_pids.iter().any(|pid| alive(*pid)) {
            assert!(
                Instant::now() < deadline,
                "round {round}: still alive after the restart: {:?}",
                killed_pids
                    .iter()
                    .filter(|pid| alive(**pid))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let run = wait_for_end(&daemon, &id);
    assert_eq!(run["status"], "COMPLETED", "{run}");
    // Every commit on the run branch is a task of a recorded step: no tool of a killed agent
    // committed behind the log's back.
    let branch = run["worktree"]["run_branch"].as_str().expect("branch");
    let log = Command::new("git")
        .args(["log", "--format=%s", &format!("main..{branch}")])
        .current_dir(&repo)
        .output()
        .expect("git log");
    let subjects = String::from_utf8_lossy(&log.stdout).into_owned();
    assert!(!subjects.contains("late commit"), "{subjects}");
    assert_eq!(subjects.lines().count(), 2, "{subjects}");
    assert_eq!(run["tasks_done"], 2);
    assert!(
        !data.join("processes").exists()
            || std::fs::read_dir(data.join("processes"))
                .expect("ledger")
                .next()
                .is_none(),
        "the ledger is empty once nothing runs"
    );
}
