//! Server-sent event streams: the log (`id:` is the global seq) and a step's output (`id:` is
//! `<step_id>:<byte offset after the chunk>`), with keep-alive comments.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::response::sse::{Event as Frame, KeepAlive, Sse};
use futures_util::Stream;
use futures_util::stream::{self, StreamExt};
use loop_api::meta::OutputChunk;
use loop_core::RunId;
use loop_runtime::{EventStream, OutputStream, RuntimeError};
use loop_store::StoreError;

use crate::metrics::Metrics;
use crate::state::AppState;

/// Counts an open stream for `/metrics` while it lives.
struct Open(Arc<Metrics>);

impl Open {
    fn new(metrics: &Arc<Metrics>) -> Open {
        metrics.sse_subscribers.fetch_add(1, Ordering::Relaxed);
        Open(Arc::clone(metrics))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if self.0.sse_subscribers.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last stream closed: what a burst of them freed goes back to the system.
            crate::memory::release_soon();
        }
    }
}

fn keep_alive() -> KeepAlive {
    KeepAlive::new()
        .interval(Duration::from_secs(15))
        .text("keep-alive")
}

/// A stream with nothing more to send.
pub fn closed() -> Sse<impl Stream<Item = Result<Frame, Infallible>> + use<>> {
    Sse::new(stream::empty())
}

/// The log as SSE. A run's stream (`run` given) ends after the run's terminal event, once the
/// run has settled: its files are written, so a client that waited for the end finds them.
pub fn events(
    events: EventStream,
    run: Option<RunId>,
    app: &AppState,
) -> Sse<impl Stream<Item = Result<Frame, Infallible>> + use<>> {
    let state = (events, false, Open::new(&app.metrics));
    let runtime = app.runtime.clone();
    let frames = stream::unfold(state, move |(mut events, done, open)| {
        let runtime = runtime.clone();
        async move {
            if done {
                if let Some(run_id) = run {
                    let _ = runtime.wait(run_id).await;
                }
                return None;
            }
            let frame = match events.next().await? {
                Ok(record) => {
                    let finished = run.is_some() && record.event.is_terminal();
                    let frame = Frame::default()
                        .id(record.seq.to_string())
                        .event(record.event.event_type().as_str())
                        .data(record.to_json());
                    return Some((Ok(frame), (events, finished, open)));
                }
                // An event that does not decode is named and skipped; the stream goes on. Its seq
                // is the frame's id, so a client resuming from it resumes after it.
                Err(RuntimeError::Store(StoreError::Corrupt { seq, source, .. })) => {
                    Frame::default().id(seq.to_string()).event("error").data(
                        serde_json::json!({
                            "error": format!("event {seq} cannot be read by this loopd: {source}"),
                            "code": "undecodable_event",
                            "seq": seq,
                        })
                        .to_string(),
                    )
                }
                // Anything else (the log cannot be read now) ends the stream; the client resumes.
                Err(_) => return None,
            };
            Some((Ok(frame), (events, false, open)))
        }
    })
    .take_until(app.shutdown.clone().cancelled_owned());
    Sse::new(frames).keep_alive(keep_alive())
}

/// A step's output as SSE frames `event: output`.
pub fn output(
    output: OutputStream,
    app: &AppState,
) -> Sse<impl Stream<Item = Result<Frame, Infallible>> + use<>> {
    let state = (output, Open::new(&app.metrics));
    let frames = stream::unfold(state, |(mut output, open)| async move {
        let chunk = output.next().await?.ok()?;
        let end = chunk.offset + chunk.content.len() as u64;
        let id = loop_core::resume::output_resume_id(chunk.step_id, end);
        let data = OutputChunk {
            step_id: chunk.step_id,
            offset: chunk.offset,
            content: chunk.content,
        };
        let frame = Frame::default()
            .id(id)
            .event("output")
            .json_data(data)
            .ok()?;
        Some((Ok(frame), (output, open)))
    })
    .take_until(app.shutdown.clone().cancelled_owned())
    .boxed();
    Sse::new(frames).keep_alive(keep_alive())
}
