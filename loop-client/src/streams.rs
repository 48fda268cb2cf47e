//! The daemon's server-sent event streams, resumed across dropped connections.
//!
//! Each frame's `id:` is where the stream stands (an event's seq; a step's `<step>:<offset>`);
//! when the connection drops, or the daemon restarts, the stream reconnects with that id as
//! `Last-Event-ID`, backing off, for up to [`RECONNECT_FOR`], and goes on with no gap and no
//! repeat. A run's event stream ends after the run's terminal event; a step's output stream
//! ends with the step.

use std::pin::Pin;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder as _, ExponentialBackoff, ExponentialBuilder};
use futures_util::{Stream, StreamExt};
use loop_api::meta::OutputChunk;
use loop_core::resume::{output_resume_id, parse_output_resume};
use loop_core::{EventRecord, RunId, Seq, StepId};

use crate::sse::Frame;
use crate::{Client, ClientError};

/// How long a stream keeps trying to reach a daemon that went away (a restart).
pub const RECONNECT_FOR: Duration = Duration::from_secs(60);
/// The pauses between attempts to reconnect: 200 ms, doubling up to 5 s (the deadline is
/// [`RECONNECT_FOR`] of wall time, kept by the connection, not a count of pauses).
fn reconnect_pauses() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(RECONNECT_MAX_PAUSE)
        .without_max_times()
        .build()
}
const RECONNECT_MAX_PAUSE: Duration = Duration::from_secs(5);

type Frames = Pin<Box<dyn Stream<Item = Result<Frame, reqwest::Error>> + Send>>;

/// What the next read of a connection gave.
enum Read {
    Frame(Frame),
    /// The daemon closed the stream.
    End,
    /// The connection failed.
    Broken(ClientError),
}

/// What a stream says about its connection, for a person watching it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reconnect {
    /// The daemon went away; the stream tries to reach it again.
    Lost { reason: String },
    /// It answers again, and the stream goes on where it was.
    Back,
}

type Notify = Box<dyn FnMut(Reconnect) + Send>;

/// One connection at a time, and the schedule of reconnecting.
struct Connection {
    client: Client,
    frames: Option<Frames>,
    /// When the first failed attempt since the last good read happened.
    failing_since: Option<Instant>,
    pauses: ExponentialBackoff,
    notify: Option<Notify>,
}

impl Connection {
    fn new(client: Client) -> Connection {
        Connection {
            client,
            frames: None,
            failing_since: None,
            pauses: reconnect_pauses(),
            notify: None,
        }
    }

    fn say(&mut self, what: Reconnect) {
        if let Some(notify) = self.notify.as_mut() {
            notify(what);
        }
    }

    /// Opens `path` with `Last-Event-ID: resume_id`.
    async fn open(&mut self, path: &str, resume_id: Option<String>) -> Result<(), ClientError> {
        let mut request = self
            .client
            .http
            .get(self.client.url(path))
            .header("accept", "text/event-stream");
        if let Some(id) = resume_id {
            request = request.header("last-event-id", id);
        }
        let response = self
            .client
            .authorized(request)
            .send()
            .await
            .map_err(|error| ClientError::unreachable(&self.client.base, &error))?;
        let response = ClientError::check(&format!("GET {path}"), response).await?;
        self.frames = Some(Box::pin(crate::sse::frames(response.bytes_stream())));
        Ok(())
    }

    async fn read(&mut self) -> Read {
        let Some(frames) = self.frames.as_mut() else {
            return Read::End;
        };
        match frames.next().await {
            Some(Ok(frame)) => {
                if self.failing_since.take().is_some() {
                    self.say(Reconnect::Back);
                }
                self.pauses = reconnect_pauses();
                Read::Frame(frame)
            }
            Some(Err(error)) => {
                self.frames = None;
                Read::Broken(ClientError::unreachable(&self.client.base, &error))
            }
            None => {
                self.frames = None;
                Read::End
            }
        }
    }

    /// Waits before the next attempt; `Err(error)` once the daemon has been gone too long, or
    /// when `error` is not worth another try.
    async fn back_off(&mut self, error: ClientError) -> Result<(), ClientError> {
        if !error.is_transient() {
            return Err(error);
        }
        let since = match self.failing_since {
            Some(since) => since,
            None => {
                self.say(Reconnect::Lost {
                    reason: error.to_string(),
                });
                *self.failing_since.insert(Instant::now())
            }
        };
        if since.elapsed() >= RECONNECT_FOR {
            return Err(error);
        }
        let pause = self.pauses.next().unwrap_or(RECONNECT_MAX_PAUSE);
        tokio::time::sleep(pause).await;
        Ok(())
    }
}

/// What a stream yields: the next item, or why it stopped for good.
pub type StreamItem<T> = Option<Result<T, ClientError>>;

/// Events after a position, of one run or of all.
pub struct EventStream {
    connection: Connection,
    run: Option<RunId>,
    last: Seq,
    done: bool,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("run", &self.run)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl EventStream {
    pub(crate) fn new(client: Client, run: Option<RunId>, after: Seq) -> EventStream {
        EventStream {
            connection: Connection::new(client),
            run,
            last: after,
            done: false,
        }
    }

    /// The seq of the last event yielded.
    pub fn last_seq(&self) -> Seq {
        self.last
    }

    /// Calls `notify` when the connection is lost and when it is back.
    pub fn on_reconnect(mut self, notify: impl FnMut(Reconnect) + Send + 'static) -> Self {
        self.connection.notify = Some(Box::new(notify));
        self
    }

    fn path(&self) -> String {
        match self.run {
            Some(run) => format!("/runs/{run}/events"),
            None => "/events".to_owned(),
        }
    }

    /// The next event; `None` after a run's terminal event. An event the daemon cannot read
    /// is [`ClientError::Undecodable`], and the stream goes on after it.
    pub async fn next(&mut self) -> StreamItem<EventRecord> {
        loop {
            if self.done {
                return None;
            }
            if self.connection.frames.is_none() {
                let resume = (self.last.0 > 0).then(|| self.last.to_string());
                if let Err(error) = self.connection.open(&self.path(), resume).await {
                    if let Err(error) = self.connection.back_off(error).await {
                        return Some(Err(error));
                    }
                    continue;
                }
            }
            match self.connection.read().await {
                Read::Frame(frame) => {
                    if let Some(item) = self.take(frame) {
                        return Some(item);
                    }
                }
                Read::End => match self.ended_for_good().await {
                    Ok(true) => return None,
                    Ok(false) => {}
                    Err(error) => return Some(Err(error)),
                },
                Read::Broken(error) => {
                    if let Err(error) = self.connection.back_off(error).await {
                        return Some(Err(error));
                    }
                }
            }
        }
    }

    fn take(&mut self, frame: Frame) -> StreamItem<EventRecord> {
        if frame.event == "error" {
            let seq: u64 = frame.id.parse().ok()?;
            self.last = Seq(seq);
            let message = serde_json::from_str::<serde_json::Value>(&frame.data)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or(frame.data);
            return Some(Err(ClientError::Undecodable {
                seq: Seq(seq),
                message,
            }));
        }
        if frame.data.is_empty() {
            return None;
        }
        let record = match EventRecord::from_json(&frame.data) {
            Ok(record) => record,
            Err(error) => {
                return Some(Err(ClientError::Unreadable {
                    what: "an event".to_owned(),
                    reason: error.to_string(),
                }));
            }
        };
        if record.seq <= self.last {
            return None;
        }
        self.last = record.seq;
        self.done = self.run.is_some() && record.event.is_terminal();
        Some(Ok(record))
    }

    /// The daemon closed the stream: over for a run that ended (and was read to its end); a
    /// restart or a drain otherwise.
    async fn ended_for_good(&mut self) -> Result<bool, ClientError> {
        let Some(run) = self.run else {
            return Ok(false);
        };
        match self.connection.client.run(run).await {
            Ok(view) if view.status.is_terminal() && view.last_seq <= self.last => Ok(true),
            Ok(_) => Ok(false),
            Err(error) => self.connection.back_off(error).await.map(|()| false),
        }
    }
}

/// A step's output from an offset.
pub struct OutputStream {
    connection: Connection,
    run: RunId,
    step: Option<StepId>,
    offset: u64,
}

impl std::fmt::Debug for OutputStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputStream")
            .field("run", &self.run)
            .field("step", &self.step)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

impl OutputStream {
    pub(crate) fn new(
        client: Client,
        run: RunId,
        step: Option<StepId>,
        offset: u64,
    ) -> OutputStream {
        OutputStream {
            connection: Connection::new(client),
            run,
            step,
            offset,
        }
    }

    /// The step read (known once the first chunk arrived, when none was given).
    pub fn step(&self) -> Option<StepId> {
        self.step
    }

    /// Calls `notify` when the connection is lost and when it is back.
    pub fn on_reconnect(mut self, notify: impl FnMut(Reconnect) + Send + 'static) -> Self {
        self.connection.notify = Some(Box::new(notify));
        self
    }

    /// The next piece of output; `None` once the step has finished and all was read.
    pub async fn next(&mut self) -> StreamItem<OutputChunk> {
        loop {
            if self.connection.frames.is_none() {
                let (path, resume) = match self.step {
                    Some(step) => (
                        format!("/runs/{}/output", self.run),
                        Some(output_resume_id(step, self.offset)),
                    ),
                    None => (
                        format!("/runs/{}/output?offset={}", self.run, self.offset),
                        None,
                    ),
                };
                if let Err(error) = self.connection.open(&path, resume).await {
                    if let Err(error) = self.connection.back_off(error).await {
                        return Some(Err(error));
                    }
                    continue;
                }
            }
            match self.connection.read().await {
                Read::Frame(frame) if frame.event == "output" => {
                    match serde_json::from_str::<OutputChunk>(&frame.data) {
                        Ok(chunk) => {
                            if let Ok((step, end)) = parse_output_resume(&frame.id) {
                                self.step = Some(step);
                                self.offset = end;
                            }
                            return Some(Ok(chunk));
                        }
                        Err(error) => {
                            return Some(Err(ClientError::Unreadable {
                                what: "an output frame".to_owned(),
                                reason: error.to_string(),
                            }));
                        }
                    }
                }
                Read::Frame(_) => {}
                Read::End => return None,
                Read::Broken(error) => {
                    if let Err(error) = self.connection.back_off(error).await {
                        return Some(Err(error));
                    }
                }
            }
        }
    }
}
