//! The client for programs without an async runtime: the same calls, each run to its end on a
//! small runtime of its own, and the streams as iterators.

use std::sync::Arc;
use std::time::Duration;

use loop_api::comments::{Comment, CommentBody, RequestChangesBody};
use loop_api::insight::{PostmortemBody, PostmortemReport};
use loop_api::meta::{Artifact, Health, OutputChunk};
use loop_api::review::{
    GcBody, GcReport, MergeBody, MergeOutcome, PullRequest, PullRequestBody, RemoveWorktreeBody,
    RunDiff, RunWorktree, ScrapOutcome,
};
use loop_api::runs::{CreateRun, RunsPage};
use loop_core::projection::{RunView, StepView};
use loop_core::stats::Stats;
use loop_core::{EventRecord, RunId, Seq, StepId};
use tokio::runtime::Runtime;

use crate::{ClientError, Control, ListRuns};

/// A daemon at an address, called synchronously.
#[derive(Clone, Debug)]
pub struct Client {
    inner: crate::Client,
    runtime: Arc<Runtime>,
}

/// Each blocking call is the async one, run to its end.
macro_rules! blocking {
    ($($(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $out:ty;)+) => {
        $(
            $(#[$doc])*
            pub fn $name(&self $(, $arg: $ty)*) -> Result<$out, ClientError> {
                self.runtime.block_on(self.inner.$name($($arg),*))
            }
        )+
    };
}

impl Client {
    pub fn new(addr: &str, token: Option<String>) -> Result<Client, ClientError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| ClientError::Setup(error.to_string()))?;
        Ok(Client {
            inner: crate::Client::new(addr, token)?,
            runtime: Arc::new(runtime),
        })
    }

    /// A client of a daemon that answers `/health` within `probe_for`.
    pub fn connect(
        addr: &str,
        token: Option<String>,
        probe_for: Duration,
    ) -> Result<Client, ClientError> {
        let client = Client::new(addr, token)?;
        client.wait_until_up(probe_for)?;
        Ok(client)
    }

    /// The async client this one drives.
    pub fn inner(&self) -> &crate::Client {
        &self.inner
    }

    pub fn addr(&self) -> &str {
        self.inner.addr()
    }

    blocking! {
        /// `GET /health`, once.
        fn health(&self) -> Health;
        /// `/health` until the daemon answers, for at most `limit`.
        fn wait_until_up(&self, limit: Duration) -> Health;
        fn create_run(&self, body: &CreateRun) -> RunView;
        fn list_runs(&self, query: &ListRuns) -> RunsPage;
        fn run(&self, run_id: RunId) -> RunView;
        /// The one run a reference means (id, id prefix, name, branch).
        fn find(&self, reference: &str) -> RunView;
        fn steps(&self, run_id: RunId) -> Vec<StepView>;
        fn control(&self, run_id: RunId, action: Control) -> RunView;
        /// Until the run is in a terminal state; the final run.
        fn wait(&self, run_id: RunId) -> RunView;
        fn events_so_far(&self, run_id: RunId, after: Seq) -> Vec<EventRecord>;
        fn artifacts(&self, run_id: RunId) -> Vec<Artifact>;
        fn artifact(&self, run_id: RunId, name: &str) -> Vec<u8>;
        fn diff(&self, run_id: RunId) -> RunDiff;
        fn comment(&self, run_id: RunId, body: &CommentBody) -> Comment;
        fn comments(&self, run_id: RunId) -> Vec<Comment>;
        fn request_changes(&self, run_id: RunId, body: &RequestChangesBody) -> RunView;
        fn merge(&self, run_id: RunId, body: &MergeBody) -> MergeOutcome;
        fn scrap(&self, run_id: RunId) -> ScrapOutcome;
        fn create_pr(&self, run_id: RunId, body: &PullRequestBody) -> PullRequest;
        fn worktrees(&self, workspace_root: Option<&str>) -> Vec<RunWorktree>;
        fn remove_worktree(&self, body: &RemoveWorktreeBody) -> RunWorktree;
        fn gc(&self, body: &GcBody) -> GcReport;
        fn start_postmortem(&self, run_id: RunId, body: &PostmortemBody) -> PostmortemReport;
        fn postmortem(&self, run_id: RunId) -> PostmortemReport;
        fn experiment(&self, run_id: RunId) -> loop_api::insight::ExperimentReport;
        fn stats(&self, since: Option<&str>, workspace_root: Option<&str>) -> Stats;
        fn nodes(&self) -> loop_api::meta::Nodes;
        fn accounts(&self) -> loop_api::meta::Accounts;
    }

    /// The events after `after`, of one run or of all (see [`crate::EventStream`]).
    pub fn events(&self, run: Option<RunId>, after: Seq) -> Events {
        Events {
            stream: self.inner.events(run, after),
            runtime: Arc::clone(&self.runtime),
        }
    }

    /// A step's output from `offset` (see [`crate::OutputStream`]).
    pub fn output(&self, run_id: RunId, step: Option<StepId>, offset: u64) -> Output {
        Output {
            stream: self.inner.output(run_id, step, offset),
            runtime: Arc::clone(&self.runtime),
        }
    }
}

/// [`crate::EventStream`] as an iterator.
#[derive(Debug)]
pub struct Events {
    stream: crate::EventStream,
    runtime: Arc<Runtime>,
}

impl Events {
    pub fn last_seq(&self) -> Seq {
        self.stream.last_seq()
    }

    /// Calls `notify` when the connection is lost and when it is back.
    pub fn on_reconnect(mut self, notify: impl FnMut(crate::Reconnect) + Send + 'static) -> Self {
        self.stream = self.stream.on_reconnect(notify);
        self
    }
}

impl Iterator for Events {
    type Item = Result<EventRecord, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.runtime.block_on(self.stream.next())
    }
}

/// [`crate::OutputStream`] as an iterator.
#[derive(Debug)]
pub struct Output {
    stream: crate::OutputStream,
    runtime: Arc<Runtime>,
}

impl Output {
    pub fn step(&self) -> Option<StepId> {
        self.stream.step()
    }

    /// Calls `notify` when the connection is lost and when it is back.
    pub fn on_reconnect(mut self, notify: impl FnMut(crate::Reconnect) + Send + 'static) -> Self {
        self.stream = self.stream.on_reconnect(notify);
        self
    }
}

impl Iterator for Output {
    type Item = Result<OutputChunk, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.runtime.block_on(self.stream.next())
    }
}
