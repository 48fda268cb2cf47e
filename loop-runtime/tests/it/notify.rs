//! Notifications: `notify_cmd` and `notify_webhook` as subscribers of the log, retried with
//! backoff, recorded, and delivered exactly once across restarts.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loop_core::event::{ExitReason, NameSource, RunCompleted, RunCreated};
use loop_core::{Command, EventRecord, RunId, RunState, RunStatus, decide};
use loop_store::{EventStore, SqliteStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Scratch, finish, request, runtime, scratch};

/// Polls `check` every 50 ms for up to `limit`.
async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

/// The files `notify_cmd` wrote, one per notified event.
fn notified(dir: &Path) -> Vec<EventRecord> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|path| path.extension().is_some_and(|ext| ext == "json"));
    files.sort();
    files
        .iter()
        .map(|path| {
            EventRecord::from_json(&std::fs::read_to_string(path).expect("read")).expect("json")
        })
        .collect()
}

fn deliveries(scratch: &Scratch) -> Vec<serde_json::Value> {
    std::fs::read_to_string(scratch.data_dir().join("notify/deliveries.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a delivery line"))
        .collect()
}

/// A command that saves the event it is given as `<dir>/<seq>-<kind>.json` (whole: written
/// aside, then renamed).
fn saving_cmd(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        "cat > \"{dir}/.$LOOP_SEQ\" && mv \"{dir}/.$LOOP_SEQ\" \"{dir}/$LOOP_SEQ-$LOOP_NOTIFY_KIND.json\""
    )
}

#[tokio::test]
async fn notify_cmd_gets_the_completed_event_once_even_across_a_restart() {
    let scratch = scratch(1);
    let inbox = scratch.dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(request(
            &scratch,
            "one_task.sh",
            &[("reviewer", "false"), ("notify_cmd", &saving_cmd(&inbox))],
        ))
        .await
        .expect("submit");
    assert_eq!(finish(&runtime, run.id).await.status, RunStatus::Completed);
    assert!(
        eventually(Duration::from_secs(10), || !notified(&inbox).is_empty()).await,
        "notify_cmd ran"
    );
    runtime.shutdown().await;

    // A runtime on the same log and data dir sends nothing again.
    let again = crate::support::runtime(&scratch);
    tokio::time::sleep(Duration::from_millis(300)).await;
    again.shutdown().await;

    let got = notified(&inbox);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].run_id, run.id);
    assert_eq!(got[0].event.event_type().as_str(), "RUN_COMPLETED");
    let records = crate::support::runtime(&scratch)
        .events(run.id)
        .await
        .expect("events");
    assert_eq!(
        &got[0],
        records.iter().find(|r| r.seq == got[0].seq).unwrap()
    );
    // Beside the event, what a person reading the notification wants to know of the run.
    let raw = std::fs::read_dir(&inbox)
        .expect("inbox")
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "json"))
        .expect("a notification");
    let body: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(raw).expect("read")).expect("json");
    assert_eq!(body["run"]["name"], "feature", "{body}");
    assert_eq!(
        body["run"]["workspace_root"],
        scratch
            .repo()
            .canonicalize()
            .unwrap()
            .to_string_lossy()
            .as_ref(),
        "{body}"
    );
    assert_eq!(body["run"]["status"], "COMPLETED", "{body}");
    assert!(body["run"]["cost_usd"].is_number(), "{body}");
    let lines = deliveries(&scratch);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["status"], "delivered");
    assert_eq!(lines[0]["channel"], "cmd");
    assert_eq!(lines[0]["kind"], "run_completed");
    assert_eq!(lines[0]["attempts"], 1);
}

/// A webhook receiver on loopback that answers 503 to the first `failures` requests and 200
/// after, and keeps each request's head and body.
async fn receiver(failures: usize) -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hooks/loop", listener.local_addr().expect("addr"));
    let got: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let seen = Arc::clone(&got);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut bytes = Vec::new();
            let mut buffer = [0u8; 4096];
            let (head, body) = loop {
                let n = stream.read(&mut buffer).await.unwrap_or(0);
                bytes.extend_from_slice(&buffer[..n]);
                let text = String::from_utf8_lossy(&bytes).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|n| n.trim().parse().ok())
                        .unwrap_or(0);
                    if body.len() >= length || n == 0 {
                        break (head.to_owned(), body.to_owned());
                    }
                } else if n == 0 {
                    break (text, String::new());
                }
            };
            let n = {
                let mut got = seen.lock().unwrap();
                got.push((head, body));
                got.len()
            };
            let status = if n <= failures {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let answer =
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    (url, got)
}

#[tokio::test]
async fn a_webhook_that_fails_twice_is_retried_and_gets_the_event_once() {
    let scratch = scratch(1);
    let (url, got) = receiver(2).await;
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(request(
            &scratch,
            "one_task.sh",
            &[("reviewer", "false"), ("notify_webhook", &url)],
        ))
        .await
        .expect("submit");
    assert_eq!(finish(&runtime, run.id).await.status, RunStatus::Completed);
    // 0.5 s and 1 s of backoff between the three tries.
    assert!(
        eventually(Duration::from_secs(10), || deliveries(&scratch).len() == 1).await,
        "the delivery is recorded"
    );
    runtime.shutdown().await;
    let requests = got.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "{requests:?}");
    let (head, body) = &requests[2];
    assert!(head.starts_with("POST /hooks/loop HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("X-Loop-Kind: run_completed"), "{head}");
    assert!(head.contains("Content-Type: application/json"), "{head}");
    let record = EventRecord::from_json(body).expect("the body is the event's JSON");
    assert_eq!(record.run_id, run.id);
    assert_eq!(record.event.event_type().as_str(), "RUN_COMPLETED");
    assert_eq!(requests[0].1, *body, "every try sends the same event");
    let lines = deliveries(&scratch);
    assert_eq!(
        (
            &lines[0]["status"],
            &lines[0]["attempts"],
            &lines[0]["channel"]
        ),
        (&"delivered".into(), &3.into(), &"webhook".into())
    );
}

/// Appends a whole COMPLETED run straight to the log, as a process without a notifier would.
fn completed_run_in_log(store: &SqliteStore, notify_cmd: &str, workspace: &Path) -> RunId {
    let run_id = RunId::from_uuid(uuid::Uuid::now_v7());
    let mut state = RunState::new();
    let created = RunCreated {
        name: "appended".to_owned(),
        name_source: NameSource::Explicit,
        workspace_root: workspace.to_string_lossy().into_owned(),
        spec_path: "specs/feature.md".to_owned(),
        plan_path: "specs/planning/feature-plan.md".to_owned(),
        config: BTreeMap::from([("notify_cmd".to_owned(), notify_cmd.to_owned())]),
        prompt_template: Default::default(),
        tasks_done: None,
        tasks_total: None,
    };
    let completed = RunCompleted {
        exit_reason: ExitReason::CompletePlan,
        completed_iteration: 1,
    };
    for command in [
        Command::Create(created),
        Command::Start,
        Command::Complete(completed),
    ] {
        let events = decide(&state, command).expect("legal");
        for record in store
            .append(run_id, state.version(), 1_790_000_000_000, events)
            .expect("append")
        {
            state.apply(&record).expect("apply");
        }
    }
    run_id
}

#[tokio::test]
async fn an_event_appended_while_no_notifier_runs_is_delivered_by_the_next_one_once() {
    let scratch = scratch(0);
    let inbox = scratch.dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    // The first runtime sets the cursor (at the log's end) and stops.
    runtime(&scratch).shutdown().await;
    let store = SqliteStore::open(scratch.db()).expect("open log");
    let run_id = completed_run_in_log(&store, &saving_cmd(&inbox), &scratch.repo());
    drop(store);
    assert!(notified(&inbox).is_empty());

    for _ in 0..2 {
        let runtime = runtime(&scratch);
        eventually(Duration::from_secs(5), || !notified(&inbox).is_empty()).await;
        runtime.shutdown().await;
    }
    let got = notified(&inbox);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].run_id, run_id);
    assert_eq!(deliveries(&scratch).len(), 1);
}
