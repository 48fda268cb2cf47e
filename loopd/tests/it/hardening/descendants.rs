//! Issue 23, defect 8: a descendant that calls `setsid` left the agent's process group, and
//! with it every kill: it survived `cancel` and kill -9 of the daemon and committed later; with
//! the reaper killed first, whole agent groups survived until a new daemon started.
//!
//! Each test's agent starts a real `setsid -f` grandchild (a session of its own, orphaned at
//! once) that would write `late` 4 s later, and then hangs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{client, get_json, repo, start_daemon, submit};

use super::children_with_arg;

/// The pid's process is alive (a zombie is not).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next()),
            Some("Z" | "X") | None
        ),
        Err(_) => false,
    }
}

/// A run whose agent leaves a `setsid` grandchild behind, which writes its pid to
/// `<dir>/escaped` and, 4 s later, `<dir>/late`.
fn escaping_run(repo: &Path, dir: &Path) -> Value {
    let escaped = dir.join("escaped");
    let late = dir.join("late");
    json!({
        "spec_path": "specs/feature.md",
        "workspace_root": repo,
        "no_worktree": true,
        "config": {
            "agent": "command",
            "agent_cmd": format!(
                "cat > /dev/null; setsid -f sh -c 'echo $$ > {escaped}; sleep 4; echo late > {late}'; sleep 300",
                escaped = escaped.display(),
                late = late.display(),
            ),
            "reviewer": false,
            "postmortem": false,
            "run_naming_mode": "spec_slug",
        },
    })
}

/// The escaped grandchild's pid, once it has started (within 30 s); it is in a session of its
/// own, not the agent's group.
fn escaped_pid(dir: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(pid) = std::fs::read_to_string(dir.join("escaped"))
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok())
        {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let session = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(3)?.parse::<i32>().ok());
            assert_eq!(session, Some(pid), "the grandchild leads its own session");
            return pid;
        }
        assert!(Instant::now() < deadline, "the grandchild never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `pid` is gone within 3 s, and 5 s later nothing wrote `late`.
fn ends_and_never_writes(pid: i32, dir: &Path, after: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "the setsid grandchild {pid} is alive 3 s after {after}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        !dir.join("late").exists(),
        "the setsid grandchild wrote after {after}"
    );
}

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(&dir.path().join("repo"), 1);
    let marks = dir.path().join("marks");
    std::fs::create_dir(&marks).expect("marks");
    (dir, repo, marks)
}

#[test]
fn a_setsid_grandchild_ends_with_a_canceled_run() {
    let (dir, repo, marks) = setup();
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let id = submit(&daemon, &escaping_run(&repo, &marks));
    let pid = escaped_pid(&marks);
    let canceled = client()
        .post(daemon.url(&format!("/runs/{id}/cancel")))
        .send()
        .expect("cancel");
    assert!(canceled.status().is_success());
    ends_and_never_writes(pid, &marks, "cancel");
    assert_eq!(
        get_json(&daemon, &format!("/runs/{id}"))["run"]["status"],
        "CANCELED"
    );
}

#[test]
fn a_setsid_grandchild_ends_with_a_paused_run() {
    let (dir, repo, marks) = setup();
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let id = submit(&daemon, &escaping_run(&repo, &marks));
    let pid = escaped_pid(&marks);
    // `now`: a pause stops the call in flight, its agent's group and what left the group; a
    // plain pause waits for the step to end, and this agent's step never does.
    let paused = client()
        .post(daemon.url(&format!("/runs/{id}/pause?now=true")))
        .send()
        .expect("pause");
    assert!(paused.status().is_success());
    ends_and_never_writes(pid, &marks, "pause");
}

#[test]
fn a_setsid_grandchild_ends_with_a_killed_daemon() {
    let (dir, repo, marks) = setup();
    let mut daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    submit(&daemon, &escaping_run(&repo, &marks));
    let pid = escaped_pid(&marks);
    daemon.kill();
    ends_and_never_writes(pid, &marks, "kill -9 of the daemon");
}

/// A killed reaper is replaced at once, not at the daemon's next child; and with no reaper at
/// all, the keeper still ends the tree when the daemon dies.
#[test]
fn a_killed_reaper_is_replaced_at_once_and_nothing_outlives_the_daemon() {
    let (dir, repo, marks) = setup();
    let mut daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    submit(&daemon, &escaping_run(&repo, &marks));
    let pid = escaped_pid(&marks);
    let reapers = children_with_arg(daemon.pid() as i32, "--loop-runtime-reaper");
    assert_eq!(reapers.len(), 1, "{reapers:?}");
    nix_kill(reapers[0]);
    let deadline = Instant::now() + Duration::from_secs(2);
    let replaced = loop {
        let now = children_with_arg(daemon.pid() as i32, "--loop-runtime-reaper");
        if let Some(new) = now.iter().find(|pid| **pid != reapers[0] && alive(**pid)) {
            break *new;
        }
        assert!(
            Instant::now() < deadline,
            "no new reaper 2 s after the first was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Both gone at once: what the keeper does not end, nobody does.
    nix_kill(replaced);
    daemon.kill();
    ends_and_never_writes(pid, &marks, "kill -9 of the reaper and then the daemon");
}

fn nix_kill(pid: i32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -9 {pid}");
}
