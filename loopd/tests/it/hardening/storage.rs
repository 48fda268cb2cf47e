//! Faults of the log's storage: a bad database, an event that does not decode, a full disk.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{client, repo, run_body, start_daemon, wait_for_end};

use super::needs_root;

#[test]
fn a_bad_database_stops_the_daemon_before_it_says_it_listens() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("dir");
    std::fs::write(data.join("loopd.db"), b"this is not a database at all").expect("junk");
    let output = Command::new(env!("CARGO_BIN_EXE_loopd"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env_remove("LOOPD_AUTH_TOKEN")
        .output()
        .expect("run loopd");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("listening"), "{stderr}");
    assert!(stderr.contains("loopd.db"), "{stderr}");
}

#[test]
fn an_event_that_does_not_decode_is_named_and_skipped_not_the_end_of_streams() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let data = dir.path().join("data");
    let daemon = start_daemon(&data, &[], &[]);
    let created: Value = client()
        .post(daemon.url("/runs"))
        .json(&run_body(&repo, "one_task.sh", json!({})))
        .send()
        .expect("create")
        .json()
        .expect("json");
    let id = crate::support::run_id(&created);
    wait_for_end(&daemon, &id);
    drop(daemon);
    // An event a newer build wrote, of a type this one does not know, in the middle of the log.
    let conn = rusqlite::Connection::open(data.join("loopd.db")).expect("open");
    conn.execute(
        "UPDATE events SET type = 'FROM_THE_FUTURE' WHERE seq = 3",
        [],
    )
    .expect("tamper");
    drop(conn);
    let daemon = start_daemon(&data, &[], &[]);
    let response = client().get(daemon.url("/events")).send().expect("stream");
    let mut seqs = Vec::new();
    let mut errors = Vec::new();
    crate::support::read_frames(response, |frame| {
        let seq: u64 = frame.id.as_deref().unwrap_or("0").parse().unwrap_or(0);
        if frame.event.as_deref() == Some("error") {
            errors.push(frame.data.clone());
        } else {
            seqs.push(seq);
        }
        seq >= 6
    });
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("undecodable_event"), "{errors:?}");
    assert_eq!(&seqs[..4], &[1, 2, 4, 5], "the stream goes on after it");
    // The figures are folded from the log in the background: give them a moment.
    let completed = "loopd_runs{status=\"COMPLETED\"} 1\n";
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let metrics = client()
            .get(daemon.url("/metrics"))
            .send()
            .expect("metrics")
            .text()
            .expect("text");
        if metrics.contains(completed) || Instant::now() > deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        metrics.contains("loopd_undecodable_events_total 1"),
        "{metrics}"
    );
    // The rest of the figures are folded from the events around it, not zeroed.
    assert!(metrics.contains(completed), "{metrics}");
    assert!(
        metrics.contains("loopd_steps_total{phase=\"implementation\",status=\"SUCCEEDED\"} 1\n"),
        "{metrics}"
    );
}

#[test]
fn a_full_disk_under_the_data_dir_is_visible_and_the_run_goes_on_after() {
    if !needs_root("a_full_disk_under_the_data_dir_is_visible_and_the_run_goes_on_after") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 2);
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("dir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs"])
        .arg(&data)
        .status()
        .expect("mount");
    assert!(mounted.success(), "cannot mount a tmpfs as root");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&data);
    let daemon = start_daemon(&data, &[], &[]);
    let client = client();
    let created: Value = client
        .post(daemon.url("/runs"))
        .json(&run_body(
            &repo,
            "chatty.sh",
            json!({"artifact_mode": "workspace"}),
        ))
        .send()
        .expect("create")
        .json()
        .expect("json");
    let id = crate::support::run_id(&created);
    // Fill the disk while the run works.
    let filler = data.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=64"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    // The run says why it does not move; new runs and the health check say so too.
    let deadline = Instant::now() + Duration::from_secs(30);
    let waiting = loop {
        let run: Value = client
            .get(daemon.url(&format!("/runs/{id}")))
            .send()
            .expect("get")
            .json()
            .expect("json");
        if run["run"]["waiting"]["code"] == "store_unavailable" {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "the run never showed the full disk: {run}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(waiting["run"]["status"], "RUNNING", "{waiting}");
    let health = client.get(daemon.url("/health")).send().expect("health");
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    let health: Value = health.json().expect("json");
    assert_eq!(health["status"], "degraded", "{health}");
    let refused = client
        .post(daemon.url("/runs"))
        .json(&run_body(&repo, "one_task.sh", json!({})))
        .send()
        .expect("create");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let refused: Value = refused.json().expect("json");
    assert_eq!(refused["code"], "store_unavailable", "{refused}");
    // Space comes back: the run goes on to its end, and all is well again.
    std::fs::remove_file(&filler).expect("free the space");
    let run = wait_for_end(&daemon, &id);
    assert_eq!(run["status"], "COMPLETED", "{run}");
    let health: Value = client
        .get(daemon.url("/health"))
        .send()
        .expect("health")
        .json()
        .expect("json");
    assert_eq!(health["status"], "ok", "{health}");
}

/// A 1 MiB tmpfs mounted on `dir` (root only), unmounted when dropped.
struct SmallDisk<'a>(&'a Path);

impl<'a> SmallDisk<'a> {
    fn mount(dir: &'a Path) -> SmallDisk<'a> {
        std::fs::create_dir_all(dir).expect("dir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount");
        assert!(mounted.success(), "cannot mount a tmpfs as root");
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

/// Submits `body` and waits until the run shows `storage_full`, which it must do within 30 s
/// without ending; the run then.
fn until_storage_full(daemon: &crate::support::Daemon, body: &Value) -> (String, Value) {
    let client = client();
    let created: Value = client
        .post(daemon.url("/runs"))
        .json(body)
        .send()
        .expect("create")
        .json()
        .expect("json");
    let id = crate::support::run_id(&created);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run: Value = client
            .get(daemon.url(&format!("/runs/{id}")))
            .send()
            .expect("get")
            .json()
            .expect("json");
        if run["run"]["waiting"]["code"] == "storage_full" {
            return (id, run);
        }
        assert!(
            !run["run"]["status"].as_str().is_some_and(|status| [
                "FAILED",
                "COMPLETED",
                "CANCELED"
            ]
            .contains(&status)),
            "the run ended instead of waiting for space: {run}"
        );
        assert!(
            Instant::now() < deadline,
            "the run never showed the full disk: {run}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Issue 23, defect 10: a full disk under a step's log (`iter-01-impl.log: No space left on
/// device`) failed the run. Now the run waits, says `storage_full`, and goes on when space is
/// back, its log whole. The disk is a real 1 MiB tmpfs under the workspace's run files (the
/// log stays on the data dir, so this is the run's files alone); the agent fills it mid-step.
#[test]
fn a_full_disk_under_a_step_s_log_holds_the_run_until_space_is_back() {
    if !needs_root("a_full_disk_under_a_step_s_log_holds_the_run_until_space_is_back") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(&dir.path().join("repo"), 1);
    let logs = repo.join("logs");
    let _disk = SmallDisk::mount(&logs);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let filler = logs.join("filler");
    let mark = dir.path().join("filled");
    // The first call fills the disk, then prints 30 lines the log cannot take, then does its
    // task as one_task.sh does.
    let agent = format!(
        "if [ ! -e {mark} ]; then touch {mark}; dd if=/dev/zero of={filler} bs=64k 2>/dev/null; \
         i=0; while [ $i -lt 30 ]; do i=$((i+1)); echo \"line $i\"; done; fi; exec {one_task}",
        mark = mark.display(),
        filler = filler.display(),
        one_task = crate::support::stub("one_task.sh"),
    );
    let mut body = run_body(&repo, "one_task.sh", json!({"artifact_mode": "workspace"}));
    body["config"]["agent_cmd"] = json!(agent);
    let (id, waiting) = until_storage_full(&daemon, &body);
    assert_eq!(waiting["run"]["status"], "RUNNING", "{waiting}");
    let reason = waiting["run"]["waiting"]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("iter-01-impl.log"), "{waiting}");
    // Held, not failed: still so a moment later.
    std::thread::sleep(Duration::from_secs(2));
    let still: Value = client()
        .get(daemon.url(&format!("/runs/{id}")))
        .send()
        .expect("get")
        .json()
        .expect("json");
    assert_eq!(still["run"]["waiting"]["code"], "storage_full", "{still}");

    std::fs::remove_file(&filler).expect("free the space");
    let run = wait_for_end(&daemon, &id);
    assert_eq!(run["status"], "COMPLETED", "{run}");
    let log = std::fs::read_to_string(crate::support::run_file(
        &repo,
        &dir.path().join("data"),
        &id,
        "iter-01-impl.log",
    ))
    .expect("the step's log");
    assert!(
        log.contains("line 1\n") && log.contains("line 30\n"),
        "{log}"
    );
}

/// Issue 23, defect 10, beyond the step's log: a file the run writes at a step's start (here
/// the review's prompt, written after the implementation call filled the disk) failed the run
/// with `review-prompt.txt: No space left on device`. Now it holds the run in `storage_full`
/// naming that file, and the run goes on to complete once space is back, the prompt whole.
#[test]
fn a_full_disk_under_a_step_s_prompt_holds_the_run_until_space_is_back() {
    if !needs_root("a_full_disk_under_a_step_s_prompt_holds_the_run_until_space_is_back") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(&dir.path().join("repo"), 1);
    let logs = repo.join("logs");
    let _disk = SmallDisk::mount(&logs);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let filler = logs.join("filler");
    let mark = dir.path().join("filled");
    // The first implementation call does its task as one_task.sh does, waits until its output
    // is in the step's log (the daemon writes it as it reads it), then fills the disk; the
    // review's prompt is the next new file of the run.
    let agent = format!(
        "if [ \"$LOOP_PHASE\" = implementation ] && [ ! -e {mark} ]; then touch {mark}; \
         {one_task} || exit 1; \
         until grep -q 'DONE: task' \"$LOOP_RUN_DIR/iter-01-impl.log\"; do sleep 0.05; done; \
         dd if=/dev/zero of={filler} bs=4k 2>/dev/null; exit 0; fi; \
         exec {one_task}",
        mark = mark.display(),
        filler = filler.display(),
        one_task = crate::support::stub("one_task.sh"),
    );
    let mut body = run_body(
        &repo,
        "one_task.sh",
        json!({"artifact_mode": "workspace", "reviewer": true}),
    );
    body["config"]["agent_cmd"] = json!(agent);
    let (id, waiting) = until_storage_full(&daemon, &body);
    assert_eq!(waiting["run"]["status"], "RUNNING", "{waiting}");
    let reason = waiting["run"]["waiting"]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("review-prompt.txt"), "{waiting}");
    std::thread::sleep(Duration::from_secs(2));
    let still: Value = client()
        .get(daemon.url(&format!("/runs/{id}")))
        .send()
        .expect("get")
        .json()
        .expect("json");
    assert_eq!(still["run"]["waiting"]["code"], "storage_full", "{still}");
    assert_eq!(still["run"]["status"], "RUNNING", "{still}");

    std::fs::remove_file(&filler).expect("free the space");
    let run = wait_for_end(&daemon, &id);
    assert_eq!(run["status"], "COMPLETED", "{run}");
    let prompt = std::fs::read_to_string(crate::support::run_file(
        &repo,
        &dir.path().join("data"),
        &id,
        "review-prompt.txt",
    ))
    .expect("the review's prompt");
    assert!(!prompt.is_empty());
}

/// Issue 23, defect 10, at a run's end: the files written once the run ended (`summary.json`,
/// `run.log`, `events.jsonl`, the postmortem's sources) met a full disk and were left unwritten
/// or empty without a word, the run COMPLETED. Now the run is held: its view says
/// `storage_full` naming the file, its slot stays taken, and once space is back the files are
/// written whole and the wait is gone. The agent fills the 1 MiB tmpfs under the run's files
/// after its last output is in the step's log, so the end's files are the first to meet it.
#[test]
fn a_full_disk_under_a_run_s_end_files_holds_it_until_they_are_written() {
    if !needs_root("a_full_disk_under_a_run_s_end_files_holds_it_until_they_are_written") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(&dir.path().join("repo"), 1);
    let logs = repo.join("logs");
    let _disk = SmallDisk::mount(&logs);
    let data = dir.path().join("data");
    let daemon = start_daemon(&data, &[], &[]);
    let filler = logs.join("filler");
    let agent = format!(
        "{one_task} || exit 1; \
         until grep -q 'DONE: task' \"$LOOP_RUN_DIR/iter-01-impl.log\"; do sleep 0.05; done; \
         dd if=/dev/zero of={filler} bs=4k 2>/dev/null; exit 0",
        filler = filler.display(),
        one_task = crate::support::stub("one_task.sh"),
    );
    let mut body = run_body(&repo, "one_task.sh", json!({"artifact_mode": "workspace"}));
    body["config"]["agent_cmd"] = json!(agent);
    let client = client();
    let created: Value = client
        .post(daemon.url("/runs"))
        .json(&body)
        .send()
        .expect("create")
        .json()
        .expect("json");
    let id = crate::support::run_id(&created);
    let get = |id: &str| -> Value {
        client
            .get(daemon.url(&format!("/runs/{id}")))
            .send()
            .expect("get")
            .json()
            .expect("json")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let waiting = loop {
        let run = get(&id);
        if run["run"]["waiting"]["code"] == "storage_full" {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "the run never showed that its files wait for space: {run}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(waiting["run"]["status"], "COMPLETED", "{waiting}");
    let reason = waiting["run"]["waiting"]["reason"].as_str().unwrap_or("");
    assert!(
        ["summary.json", "run.log", "events.jsonl", "report.tsv"]
            .iter()
            .any(|file| reason.contains(file)),
        "{waiting}"
    );
    // Held, not given up: still so a moment later.
    std::thread::sleep(Duration::from_secs(2));
    let still = get(&id);
    assert_eq!(still["run"]["waiting"]["code"], "storage_full", "{still}");

    std::fs::remove_file(&filler).expect("free the space");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = get(&id);
        if run["run"]["waiting"].is_null() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run still waits with space back: {run}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let file = |name: &str| {
        std::fs::read_to_string(crate::support::run_file(&repo, &data, &id, name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let summary: Value = serde_json::from_str(&file("summary.json")).expect("summary.json");
    assert_eq!(summary["exit_reason"], "complete_plan", "{summary}");
    let events = file("events.jsonl");
    assert!(
        events.lines().any(|line| line.contains("RUN_COMPLETED")),
        "{events}"
    );
    assert!(!file("run.log").is_empty());
}
