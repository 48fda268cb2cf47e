//! Event and output streams over SSE: live, resumable, ending with the run.

use serde_json::{Value, json};

use crate::support::{client, read_frames, repo, run_body, start_daemon, submit, wait_for_end};

#[test]
fn a_runs_events_stream_live_to_its_end_and_resume_without_gap_or_repeat() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 2);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let client = client();
    let id = submit(
        &daemon,
        &run_body(&repo, "chatty.sh", json!({"verify_cmds": "true"})),
    );

    // From the start, live, until the stream closes after the terminal event.
    let response = client
        .get(daemon.url(&format!("/runs/{id}/events")))
        .send()
        .expect("events");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/event-stream")
    );
    let frames = read_frames(response, |_| false);
    let types: Vec<&str> = frames.iter().filter_map(|f| f.event.as_deref()).collect();
    assert_eq!(types.first(), Some(&"RUN_CREATED"));
    assert_eq!(types.last(), Some(&"RUN_COMPLETED"), "{types:?}");
    let seqs: Vec<u64> = frames
        .iter()
        .filter_map(|f| f.id.as_deref()?.parse().ok())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    for frame in &frames {
        let event: Value = serde_json::from_str(&frame.data).expect("data is the event JSON");
        assert_eq!(
            event["seq"].to_string(),
            frame.id.clone().unwrap_or_default()
        );
    }

    // Resuming after any frame gives exactly the frames after it, by header or by query.
    let middle = frames[frames.len() / 2].id.clone().expect("id");
    let by_header = read_frames(
        client
            .get(daemon.url(&format!("/runs/{id}/events")))
            .header("Last-Event-ID", &middle)
            .send()
            .expect("resume"),
        |_| false,
    );
    let by_query = read_frames(
        client
            .get(daemon.url(&format!("/runs/{id}/events?after={middle}")))
            .send()
            .expect("resume"),
        |_| false,
    );
    let rest = &frames[frames.len() / 2 + 1..];
    assert_eq!(by_header, rest);
    assert_eq!(by_query, rest);

    // The JSON form of the same log.
    let log: Value = client
        .get(daemon.url(&format!("/runs/{id}/events?format=json")))
        .send()
        .expect("json")
        .json()
        .expect("json");
    assert_eq!(log["events"].as_array().map(Vec::len), Some(frames.len()));

    // The output of the first step, resumable by step and offset.
    let steps: Value = client
        .get(daemon.url(&format!("/runs/{id}/steps")))
        .send()
        .expect("steps")
        .json()
        .expect("json");
    let step = steps["steps"][0]["id"].as_str().expect("step").to_owned();
    let output = read_frames(
        client
            .get(daemon.url(&format!("/runs/{id}/output?step={step}")))
            .send()
            .expect("output"),
        |_| false,
    );
    let text: String = output
        .iter()
        .map(|f| {
            serde_json::from_str::<Value>(&f.data).expect("json")["content"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert!(text.starts_with("line 1\nline 2\n"), "{text}");
    let resume_at = output[0].id.clone().expect("id");
    let resumed = read_frames(
        client
            .get(daemon.url(&format!("/runs/{id}/output")))
            .header("Last-Event-ID", &resume_at)
            .send()
            .expect("output"),
        |_| false,
    );
    assert_eq!(resumed, output[1..]);
    wait_for_end(&daemon, &id);
}

#[test]
fn the_global_stream_carries_every_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let client = client();
    let id = submit(&daemon, &run_body(&repo, "one_task.sh", json!({})));
    let frames = read_frames(
        client.get(daemon.url("/events")).send().expect("events"),
        |frame| frame.event.as_deref() == Some("RUN_COMPLETED"),
    );
    assert!(frames.iter().all(|f| f.data.contains(&id)));
    assert_eq!(
        frames.last().and_then(|f| f.event.as_deref()),
        Some("RUN_COMPLETED")
    );
}
