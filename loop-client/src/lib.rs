//! A typed client of `loopd`: the daemon's requests and answers as the types it serves
//! ([`loop_api`]), its event and output streams resumed across dropped connections, and runs
//! found by whatever a person calls them.
//!
//! ```no_run
//! # async fn demo() -> Result<(), loop_client::ClientError> {
//! use loop_client::Client;
//!
//! let client = Client::new("http://127.0.0.1:7700", None)?;
//! client.wait_until_up(std::time::Duration::from_secs(5)).await?;
//! let run = client.find("quiet-harbor").await?;
//! let mut events = client.events(Some(run.id), loop_core::Seq(0));
//! while let Some(event) = events.next().await {
//!     println!("{}", event?.event.event_type());
//! }
//! # Ok(()) }
//! ```
//!
//! [`blocking::Client`] is the same for programs without an async runtime (`loopctl`).

pub mod blocking;
mod error;
pub mod sse;
mod streams;

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use loop_api::comments::{
    Comment, CommentBody, CommentEnvelope, CommentsEnvelope, RequestChangesBody,
};
use loop_api::insight::{
    ExperimentReport, PostmortemBody, PostmortemEnvelope, PostmortemReport, StatsEnvelope,
};
use loop_api::meta::{Artifact, ArtifactsEnvelope, Health};
use loop_api::review::{
    DiffEnvelope, GcBody, GcEnvelope, GcReport, MergeBody, MergeEnvelope, MergeOutcome,
    PullRequest, PullRequestBody, PullRequestEnvelope, RemoveWorktreeBody, RunDiff, RunWorktree,
    ScrapEnvelope, ScrapOutcome, WorktreeEnvelope, WorktreesEnvelope,
};
use loop_api::runs::{CreateRun, EventsEnvelope, RunEnvelope, RunsPage, StepsEnvelope};
use loop_core::projection::{RunView, StepView};
use loop_core::stats::Stats;
use loop_core::{EventRecord, RunId, RunStatus, Seq, StepId};
use reqwest::header::AUTHORIZATION;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::ClientError;
pub use streams::{EventStream, OutputStream, Reconnect, StreamItem};

/// A plain request (not a stream) may take this long: merges run verification commands.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A daemon at an address, with the token to send (if any).
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// Which runs [`Client::list_runs`] returns.
#[derive(Clone, Debug, Default)]
pub struct ListRuns {
    pub status: Option<RunStatus>,
    pub workspace_root: Option<String>,
    pub limit: Option<usize>,
    pub before: Option<RunId>,
}

impl Client {
    /// A client of the daemon at `addr` (`http://host:port`, or `host:port`).
    pub fn new(addr: &str, token: Option<String>) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            // Streams last as long as the run: only connecting is bounded.
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|error| ClientError::Setup(error.to_string()))?;
        Ok(Client::with_http(addr, token, http))
    }

    /// The same over an HTTP client of the caller's (its own pool, proxy or timeouts). Give it
    /// no overall timeout: streams last as long as the run.
    pub fn with_http(addr: &str, token: Option<String>, http: reqwest::Client) -> Client {
        let addr = addr.trim().trim_end_matches('/');
        let base = if addr.contains("://") {
            addr.to_owned()
        } else {
            format!("http://{addr}")
        };
        Client {
            base,
            token: token.filter(|t| !t.trim().is_empty()),
            http,
        }
    }

    /// The daemon's address.
    pub fn addr(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.header(AUTHORIZATION, format!("Bearer {token}")),
            None => request,
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = self
            .authorized(request)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|error| ClientError::unreachable(&self.base, &error))?;
        let response = ClientError::check(what, response).await?;
        response
            .json()
            .await
            .map_err(|error| ClientError::unreadable(what, &error))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(&format!("GET {path}"), self.http.get(self.url(path)))
            .await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        let mut request = self.http.post(self.url(path));
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(&format!("POST {path}"), request).await
    }

    /// `GET /health`, once.
    pub async fn health(&self) -> Result<Health, ClientError> {
        let response = self
            .http
            .get(self.url("/health"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .map_err(|error| ClientError::unreachable(&self.base, &error))?;
        // A degraded daemon (503) is up: its answer says what is wrong.
        if response.status().is_success()
            || response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE
        {
            return response
                .json()
                .await
                .map_err(|error| ClientError::unreadable("GET /health", &error));
        }
        Err(ClientError::Unreachable {
            addr: self.base.clone(),
            reason: format!(
                "/health answered {}: is it loopd, and is the address right?",
                response.status()
            ),
        })
    }

    /// `/health` until the daemon answers, backing off from 200 ms, for at most `limit`.
    pub async fn wait_until_up(&self, limit: Duration) -> Result<Health, ClientError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(1))
            .with_total_delay(Some(limit))
            .without_max_times();
        (|| self.health())
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(ClientError::is_transient)
            .await
    }

    // Runs.

    pub async fn create_run(&self, body: &CreateRun) -> Result<RunView, ClientError> {
        let answer: RunEnvelope = self.post("/runs", Some(body)).await?;
        Ok(answer.run)
    }

    pub async fn list_runs(&self, query: &ListRuns) -> Result<RunsPage, ClientError> {
        let mut request = self.http.get(self.url("/runs"));
        if let Some(status) = query.status {
            request = request.query(&[("status", status.as_str())]);
        }
        if let Some(workspace) = &query.workspace_root {
            request = request.query(&[("workspace_root", workspace)]);
        }
        if let Some(limit) = query.limit {
            request = request.query(&[("limit", limit)]);
        }
        if let Some(before) = query.before {
            request = request.query(&[("before", before.to_string())]);
        }
        self.send("GET /runs", request).await
    }

    pub async fn run(&self, run_id: RunId) -> Result<RunView, ClientError> {
        let answer: RunEnvelope = self.get(&format!("/runs/{run_id}")).await?;
        Ok(answer.run)
    }

    /// The one run `reference` means: a full id, a unique id prefix, a name or a branch (the
    /// daemon looks it up). Several: [`ClientError::Ambiguous`] lists them.
    pub async fn find(&self, reference: &str) -> Result<RunView, ClientError> {
        let request = self
            .http
            .get(self.url("/runs/lookup"))
            .query(&[("ref", reference)]);
        let answer: RunEnvelope = self.send("GET /runs/lookup", request).await?;
        Ok(answer.run)
    }

    pub async fn steps(&self, run_id: RunId) -> Result<Vec<StepView>, ClientError> {
        let answer: StepsEnvelope = self.get(&format!("/runs/{run_id}/steps")).await?;
        Ok(answer.steps)
    }

    /// `pause`, `resume`, `cancel` or `retry`.
    pub async fn control(&self, run_id: RunId, action: Control) -> Result<RunView, ClientError> {
        let now = if action == Control::PauseNow {
            "?now=true"
        } else {
            ""
        };
        let path = format!("/runs/{run_id}/{}{now}", action.as_str());
        let answer: RunEnvelope = self.post(&path, None::<&()>).await?;
        Ok(answer.run)
    }

    /// Blocks until the run is in a terminal state, following its event stream (which resumes
    /// by itself after a lost connection); the final run. A run retried meanwhile is waited
    /// for again.
    ///
    /// The daemon ends a run's stream after its terminal event once the run's files are
    /// written, so the run's `summary.json` and reports are there when this returns.
    pub async fn wait(&self, run_id: RunId) -> Result<RunView, ClientError> {
        let mut after = self.run(run_id).await?.last_seq;
        loop {
            let mut events = self.events(Some(run_id), after);
            while let Some(event) = events.next().await {
                match event {
                    Ok(_) | Err(ClientError::Undecodable { .. }) => {}
                    Err(error) => return Err(error),
                }
            }
            let view = self.run(run_id).await?;
            if view.status.is_terminal() {
                return Ok(view);
            }
            after = view.last_seq;
        }
    }

    /// The run's events so far, after `after`.
    pub async fn events_so_far(
        &self,
        run_id: RunId,
        after: Seq,
    ) -> Result<Vec<EventRecord>, ClientError> {
        let path = format!("/runs/{run_id}/events?format=json&after={after}");
        let answer: EventsEnvelope = self.get(&path).await?;
        Ok(answer.events)
    }

    /// The events after `after`, of one run (ending after its terminal event) or of all,
    /// resumed where they left off when the connection drops.
    pub fn events(&self, run: Option<RunId>, after: Seq) -> EventStream {
        EventStream::new(self.clone(), run, after)
    }

    /// A step's output from `offset` (the current step, else the last, when `step` is none),
    /// resumed where it left off when the connection drops.
    pub fn output(&self, run_id: RunId, step: Option<StepId>, offset: u64) -> OutputStream {
        OutputStream::new(self.clone(), run_id, step, offset)
    }

    pub async fn artifacts(&self, run_id: RunId) -> Result<Vec<Artifact>, ClientError> {
        let answer: ArtifactsEnvelope = self.get(&format!("/runs/{run_id}/artifacts")).await?;
        Ok(answer.artifacts)
    }

    /// One file of the run's directory, whole.
    pub async fn artifact(&self, run_id: RunId, name: &str) -> Result<Vec<u8>, ClientError> {
        let what = format!("GET /runs/{run_id}/artifacts/{name}");
        let request = self
            .http
            .get(self.url(&format!("/runs/{run_id}/artifacts/{name}")));
        let response = self
            .authorized(request)
            .send()
            .await
            .map_err(|error| ClientError::unreachable(&self.base, &error))?;
        let response = ClientError::check(&what, response).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|error| ClientError::unreadable(&what, &error))?;
        Ok(bytes.to_vec())
    }

    // Review.

    pub async fn diff(&self, run_id: RunId) -> Result<RunDiff, ClientError> {
        let answer: DiffEnvelope = self.get(&format!("/runs/{run_id}/diff")).await?;
        Ok(answer.diff)
    }

    /// `POST /runs/{id}/comments`: a comment on a line of a finished run's diff.
    pub async fn comment(&self, run_id: RunId, body: &CommentBody) -> Result<Comment, ClientError> {
        let answer: CommentEnvelope = self
            .post(&format!("/runs/{run_id}/comments"), Some(body))
            .await?;
        Ok(answer.comment)
    }

    /// `GET /runs/{id}/comments`: the run's comments, in the order they were made.
    pub async fn comments(&self, run_id: RunId) -> Result<Vec<Comment>, ClientError> {
        let answer: CommentsEnvelope = self.get(&format!("/runs/{run_id}/comments")).await?;
        Ok(answer.comments)
    }

    /// `POST /runs/{id}/request-changes`: the finished run goes back to work with its comments.
    pub async fn request_changes(
        &self,
        run_id: RunId,
        body: &RequestChangesBody,
    ) -> Result<RunView, ClientError> {
        let answer: RunEnvelope = self
            .post(&format!("/runs/{run_id}/request-changes"), Some(body))
            .await?;
        Ok(answer.run)
    }

    pub async fn merge(
        &self,
        run_id: RunId,
        body: &MergeBody,
    ) -> Result<MergeOutcome, ClientError> {
        let answer: MergeEnvelope = self
            .post(&format!("/runs/{run_id}/merge"), Some(body))
            .await?;
        Ok(answer.merge)
    }

    pub async fn scrap(&self, run_id: RunId) -> Result<ScrapOutcome, ClientError> {
        let answer: ScrapEnvelope = self
            .post(&format!("/runs/{run_id}/scrap"), None::<&()>)
            .await?;
        Ok(answer.scrap)
    }

    pub async fn create_pr(
        &self,
        run_id: RunId,
        body: &PullRequestBody,
    ) -> Result<PullRequest, ClientError> {
        let answer: PullRequestEnvelope = self
            .post(&format!("/runs/{run_id}/create-pr"), Some(body))
            .await?;
        Ok(answer.pull_request)
    }

    pub async fn worktrees(
        &self,
        workspace_root: Option<&str>,
    ) -> Result<Vec<RunWorktree>, ClientError> {
        let mut request = self.http.get(self.url("/worktrees"));
        if let Some(workspace) = workspace_root {
            request = request.query(&[("workspace_root", workspace)]);
        }
        let answer: WorktreesEnvelope = self.send("GET /worktrees", request).await?;
        Ok(answer.worktrees)
    }

    pub async fn remove_worktree(
        &self,
        body: &RemoveWorktreeBody,
    ) -> Result<RunWorktree, ClientError> {
        let answer: WorktreeEnvelope = self.post("/worktrees/remove", Some(body)).await?;
        Ok(answer.worktree)
    }

    pub async fn gc(&self, body: &GcBody) -> Result<GcReport, ClientError> {
        let answer: GcEnvelope = self.post("/gc", Some(body)).await?;
        Ok(answer.gc)
    }

    // Insight.

    pub async fn start_postmortem(
        &self,
        run_id: RunId,
        body: &PostmortemBody,
    ) -> Result<PostmortemReport, ClientError> {
        let answer: PostmortemEnvelope = self
            .post(&format!("/runs/{run_id}/postmortem"), Some(body))
            .await?;
        Ok(answer.postmortem)
    }

    pub async fn postmortem(&self, run_id: RunId) -> Result<PostmortemReport, ClientError> {
        let answer: PostmortemEnvelope = self.get(&format!("/runs/{run_id}/postmortem")).await?;
        Ok(answer.postmortem)
    }

    /// `GET /runs/{id}/experiment`: an experiment's table and where it stands.
    pub async fn experiment(&self, run_id: RunId) -> Result<ExperimentReport, ClientError> {
        self.get(&format!("/runs/{run_id}/experiment")).await
    }

    /// `GET /nodes`: the daemons sharing the daemon's log.
    pub async fn nodes(&self) -> Result<loop_api::meta::Nodes, ClientError> {
        self.get("/nodes").await
    }

    /// `GET /accounts`: the agent accounts of the runs in the daemon's log.
    pub async fn accounts(&self) -> Result<loop_api::meta::Accounts, ClientError> {
        self.get("/accounts").await
    }

    /// The figures of `/stats`: `since` as the daemon reads it (`7d`, `24h`, …).
    pub async fn stats(
        &self,
        since: Option<&str>,
        workspace_root: Option<&str>,
    ) -> Result<Stats, ClientError> {
        let mut request = self.http.get(self.url("/stats"));
        if let Some(since) = since {
            request = request.query(&[("since", since)]);
        }
        if let Some(workspace) = workspace_root {
            request = request.query(&[("workspace_root", workspace)]);
        }
        let answer: StatsEnvelope = self.send("GET /stats", request).await?;
        Ok(answer.stats)
    }
}

/// A change of a run's state asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Pause once the current step ends.
    Pause,
    /// Pause now: the agent's call in flight is stopped.
    PauseNow,
    Resume,
    Cancel,
    Retry,
}

impl Control {
    pub const fn as_str(self) -> &'static str {
        match self {
            Control::Pause | Control::PauseNow => "pause",
            Control::Resume => "resume",
            Control::Cancel => "cancel",
            Control::Retry => "retry",
        }
    }
}
