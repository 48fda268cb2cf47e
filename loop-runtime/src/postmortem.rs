//! The postmortem: what happened in a run, written down when it ends.
//!
//! When a run settles (COMPLETED, FAILED or CANCELED) with `postmortem=true`, the runtime
//! records `POSTMORTEM_START` and snapshots the run's working tree with git into `analysis/`
//! — before the worktree of a failed run is cleaned up — and then, in a task of its own that
//! holds no scheduler slot, asks the run's agent for the three analyses of
//! [`loop_core::postmortem`], each prompt saved beside its answer, and records
//! `POSTMORTEM_END {ok|failed|skipped, reason}`. Every file is recorded as `ARTIFACT_WRITTEN`;
//! the projection files are rewritten at the end. Nothing here changes the run's status: a
//! missing agent, a failing analysis or a timeout goes into the end's reason and the next
//! analysis goes on.
//!
//! Which adapters analyse: `claude`, `codex`, `demo` (a short fixed answer) and any adapter an
//! embedder registers, called with `LOOP_PHASE=postmortem` and `LOOP_ANALYSIS=<name>`. Not
//! `command`: its `agent_cmd` is a script written to implement plan tasks, and handing it an
//! analysis prompt could let it edit and commit in a finished run's tree; its postmortem writes
//! the snapshots and prompts and ends `skipped`.
//!
//! On demand ([`Runtime::postmortem`]) the same work runs with another model, or writes the
//! prompts only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use loop_core::config::Config;
use loop_core::event::{
    ArtifactWritten, Event, PostmortemEnd, PostmortemStart, PostmortemStatus, RunCreated,
};
use loop_core::layout::tail_path_of;
use loop_core::postmortem::{ANALYSIS_DIR, Analysis, GIT_SNAPSHOTS, Inputs};
use loop_core::projection::{Export, RunView, Summary};
use loop_core::{Command, EventRecord, RunId, RunState, RunStatus};
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::agent::{Agent, AgentRequest, CallEnd};
use crate::artifacts::RunFiles;
use crate::driver::new_step_id;
use crate::error::RuntimeError;
use crate::process::Limits;
use crate::prompting::in_workdir;
use crate::runtime::{Runtime, Shared};
use crate::step_output::StepOutput;

/// How long one git snapshot may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(30);
/// An analysis call ends this long after its final result, exited or not.
const AFTER_RESULT: Duration = Duration::from_secs(5);

/// The state of a run's postmortem and the files of its `analysis/` directory
/// (`GET /runs/{id}/postmortem`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PostmortemReport {
    pub run_id: RunId,
    /// `running`, then `ok`, `failed` or `skipped`; `None` before the first postmortem.
    pub status: Option<String>,
    /// Why the last postmortem started (`run completed`, `on demand`, `prompt only`, …).
    pub started_because: Option<String>,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    /// The analysis directory (its primary copy).
    pub dir: String,
    /// Its files, sorted by name.
    pub files: Vec<AnalysisFile>,
}

/// One file of a run's `analysis/` directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AnalysisFile {
    pub name: String,
    pub bytes: u64,
}

/// The postmortem tasks this runtime runs, so a retry or a shutdown can stop them.
#[derive(Debug)]
pub(crate) struct Postmortems {
    tasks: Mutex<HashMap<RunId, Task>>,
    next_id: AtomicU64,
    /// Runs whose postmortem task ended, its files written (for `wait_postmortem`).
    done: tokio::sync::broadcast::Sender<RunId>,
}

#[derive(Debug)]
struct Task {
    id: u64,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

/// A postmortem whose `POSTMORTEM_START` is recorded.
#[derive(Debug)]
pub(crate) struct Job {
    run_id: RunId,
    model: Option<String>,
    prompt_only: bool,
    /// Whether the snapshots are still to be taken (on demand; after a run's end they are
    /// taken at once, before its worktree can go).
    snapshot: bool,
    /// What went wrong before the analyses, for the end's reason.
    problems: Vec<String>,
}

impl Default for Postmortems {
    fn default() -> Postmortems {
        Postmortems {
            tasks: Mutex::default(),
            next_id: AtomicU64::new(0),
            done: tokio::sync::broadcast::channel(64).0,
        }
    }
}

impl Postmortems {
    fn tasks(&self) -> MutexGuard<'_, HashMap<RunId, Task>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the rest of `job` in the background.
    pub(crate) fn spawn(&self, shared: &Arc<Shared>, job: Job) {
        let run_id = job.run_id;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let cancel = shared.shutdown.child_token();
        // Holding the map while spawning: the task's own removal waits for its insertion.
        let mut tasks = self.tasks();
        let handle = tokio::spawn(crate::process::ledger::scope(
            Arc::clone(&shared.ledger),
            analyse(Arc::clone(shared), job, cancel.clone(), id)
                .instrument(info_span!("postmortem", %run_id)),
        ));
        tasks.insert(run_id, Task { id, cancel, handle });
    }

    fn finished(&self, run_id: RunId, id: u64) {
        let mut tasks = self.tasks();
        if tasks.get(&run_id).is_some_and(|task| task.id == id) {
            tasks.remove(&run_id);
        }
        drop(tasks);
        // Nobody waiting is fine.
        let _ = self.done.send(run_id);
    }

    fn running(&self, run_id: RunId) -> bool {
        self.tasks().contains_key(&run_id)
    }

    /// Stops the run's postmortem, if this runtime runs one; it records its end as failed.
    pub(crate) async fn stop(&self, run_id: RunId) {
        let task = self.tasks().remove(&run_id);
        if let Some(task) = task {
            task.cancel.cancel();
            let _ = task.handle.await;
        }
    }

    /// Stops every postmortem (at shutdown); each records its end.
    pub(crate) async fn stop_all(&self) {
        let tasks: Vec<Task> = self.tasks().drain().map(|(_, task)| task).collect();
        for task in &tasks {
            task.cancel.cancel();
        }
        for task in tasks {
            let _ = task.handle.await;
        }
    }
}

/// After a run settles: records `POSTMORTEM_START` and takes the snapshots when its
/// `postmortem` key says so and this ending has had none yet. The caller spawns the job once
/// the run's slot is free.
pub(crate) async fn begin_after_end(shared: &Arc<Shared>, run_id: RunId) -> Option<Job> {
    let records = shared.journal.read_run(run_id).await.ok()?;
    let view = RunView::fold(&records)?;
    let Some(Event::RunCreated(created)) = records.first().map(|r| &r.event) else {
        return None;
    };
    if !view.status.is_terminal() || !Config::from_frozen(&created.config).flag("postmortem") {
        return None;
    }
    let end = records.iter().rposition(|r| r.event.is_terminal())?;
    if records[end..]
        .iter()
        .any(|r| matches!(r.event, Event::PostmortemStart(_)))
    {
        return None;
    }
    // A run that ended before its first step (canceled while pending, no worktree) has nothing
    // an agent could analyse; its log says all there is.
    if !records
        .iter()
        .any(|r| matches!(r.event, Event::StepStarted(_)))
    {
        return None;
    }
    let reason = format!("run {}", view.status.as_str().to_ascii_lowercase());
    if let Err(error) = start(shared, run_id, reason).await {
        warn!(%run_id, %error, "cannot start the postmortem");
        return None;
    }
    let mut job = Job {
        run_id,
        model: None,
        prompt_only: false,
        snapshot: false,
        problems: Vec::new(),
    };
    if let Err(problem) = take_snapshots(shared, run_id).await {
        job.problems.push(problem);
    }
    Some(job)
}

async fn start(shared: &Shared, run_id: RunId, reason: String) -> Result<(), RuntimeError> {
    info!(%run_id, %reason, "postmortem started");
    shared
        .journal
        .execute(
            run_id,
            vec![Command::StartPostmortem(PostmortemStart { reason })],
        )
        .await?;
    Ok(())
}

/// A runtime starting on a log whose postmortems were cut short (a crash) ends them, so the
/// runs can be retried and analysed again. Only a runtime that owns every run does this, and
/// only for runs last changed before `started_ms`, when it started: a postmortem it begins
/// itself meanwhile is left alone.
pub(crate) async fn recover(shared: Arc<Shared>, started_ms: i64) {
    let store = Arc::clone(shared.journal.store());
    let Ok(runs) =
        crate::journal::blocking(move || store.list_runs(&loop_store::RunQuery::default())).await
    else {
        return;
    };
    for view in runs {
        if view.postmortem.as_deref() != Some("running") || view.updated_ms >= started_ms {
            continue;
        }
        let end = PostmortemEnd {
            status: PostmortemStatus::Failed,
            reason: Some("interrupted: the runtime stopped before it ended".to_owned()),
        };
        if shared
            .journal
            .execute(view.id, vec![Command::EndPostmortem(end)])
            .await
            .is_ok()
        {
            info!(run_id = %view.id, "ended a postmortem cut short by a stop");
            let _ = shared.write_projections(view.id).await;
        }
    }
}

/// Before a retry: a postmortem this runtime runs on the FAILED run is stopped (a retry must
/// not wait for minutes of analysis); one run by another process still refuses the retry.
pub(crate) async fn yield_to_retry(shared: &Shared, run_id: RunId) {
    if let Ok(state) = shared.journal.state(run_id).await
        && state.status() == Some(RunStatus::Failed)
        && state.postmortem_running()
    {
        shared.postmortems.stop(run_id).await;
    }
}

/// The background part: snapshots (on demand), prompts, analyses, the end.
async fn analyse(shared: Arc<Shared>, mut job: Job, cancel: CancellationToken, id: u64) {
    let run_id = job.run_id;
    let mut end = match work(&shared, &mut job, &cancel).await {
        Ok(end) => end,
        Err(error) => PostmortemEnd {
            status: PostmortemStatus::Failed,
            reason: Some(error.to_string()),
        },
    };
    if cancel.is_cancelled() {
        end = PostmortemEnd {
            status: PostmortemStatus::Failed,
            reason: Some("interrupted: stopped before it ended (a retry or a shutdown)".to_owned()),
        };
    }
    info!(
        status = end.status.as_str(),
        reason = end.reason.as_deref().unwrap_or(""),
        "postmortem ended"
    );
    // Recorded once the log takes it, should it refuse writes now (a full disk): a postmortem
    // must not stay `running` until a restart.
    if let Err(error) = shared
        .journal
        .execute_patiently(run_id, vec![Command::EndPostmortem(end)], &shared.shutdown)
        .await
    {
        warn!(%error, "cannot record the end of the postmortem");
    }
    let _ = shared.write_projections(run_id).await;
    shared.postmortems.finished(run_id, id);
}

/// What a postmortem works from.
struct Context {
    run_id: RunId,
    records: Vec<EventRecord>,
    created: RunCreated,
    config: Config,
    files: RunFiles,
    /// Where the agent runs: the run's worktree while it exists, else the workspace.
    workdir: PathBuf,
}

async fn context(shared: &Shared, run_id: RunId) -> Result<Context, RuntimeError> {
    let records = shared.journal.read_run(run_id).await?;
    let state =
        RunState::fold(&records).map_err(|error| RuntimeError::CorruptRun { run_id, error })?;
    let created = state
        .created()
        .cloned()
        .ok_or(RuntimeError::UnknownRun(run_id))?;
    let config = Config::from_frozen(&created.config);
    let files = RunFiles::new(&created, run_id, &config, &shared.data_dir);
    let io = |what: &str| {
        let what = what.to_owned();
        move |source| RuntimeError::Io { what, source }
    };
    files.create().map_err(io("the run directory"))?;
    files.create_dir(ANALYSIS_DIR).map_err(io("analysis/"))?;
    let workdir = state
        .worktree()
        .map(|worktree| PathBuf::from(&worktree.path))
        .filter(|path| path.is_dir())
        .unwrap_or_else(|| PathBuf::from(&created.workspace_root));
    Ok(Context {
        run_id,
        records,
        created,
        config,
        files,
        workdir,
    })
}

async fn work(
    shared: &Shared,
    job: &mut Job,
    cancel: &CancellationToken,
) -> Result<PostmortemEnd, RuntimeError> {
    if job.snapshot
        && let Err(problem) = take_snapshots(shared, job.run_id).await
    {
        job.problems.push(problem);
    }
    let context = context(shared, job.run_id).await?;
    let agent_name = context.config.text("agent").to_owned();
    let agent = shared.agent(&agent_name);
    let skip = if job.prompt_only {
        Some((
            PostmortemStatus::Skipped,
            "prompt only: no agent was asked".to_owned(),
        ))
    } else if agent_name == "command" {
        Some((
            PostmortemStatus::Skipped,
            "agent=command answers no analysis prompts (its agent_cmd implements tasks); the \
             prompts are in analysis/"
                .to_owned(),
        ))
    } else if agent.is_none() {
        Some((
            PostmortemStatus::Failed,
            format!("no agent adapter named {agent_name:?}"),
        ))
    } else {
        None
    };
    let material = Material::read(&context).await;
    let mut answers: Vec<(Analysis, String)> = Vec::new();
    for analysis in Analysis::ALL {
        if cancel.is_cancelled() {
            break;
        }
        let earlier: Vec<(Analysis, &str)> = answers
            .iter()
            .map(|(done, answer)| (*done, answer.as_str()))
            .collect();
        let prompt = loop_core::postmortem::prompt(analysis, &material.inputs(&context, &earlier));
        let prompt_name = format!("{ANALYSIS_DIR}/{}", analysis.prompt_file());
        record_file(
            shared,
            &context,
            "analysis_prompt",
            &prompt_name,
            prompt.as_bytes(),
        )
        .await?;
        let Some(agent) = agent.as_deref().filter(|_| skip.is_none()) else {
            continue;
        };
        let model = job
            .model
            .clone()
            .unwrap_or_else(|| context.config.review_model().to_owned());
        match ask(shared, &context, agent, analysis, &prompt, &model, cancel).await {
            Ok(answer) => {
                let answer_name = format!("{ANALYSIS_DIR}/{}", analysis.answer_file());
                record_file(
                    shared,
                    &context,
                    "analysis",
                    &answer_name,
                    answer.as_bytes(),
                )
                .await?;
                answers.push((analysis, answer));
            }
            Err(reason) => {
                warn!(analysis = analysis.name(), %reason, "analysis failed");
                job.problems.push(format!("{}: {reason}", analysis.name()));
            }
        }
    }
    Ok(match skip {
        Some((status, reason)) => {
            job.problems.insert(0, reason);
            PostmortemEnd {
                status,
                reason: Some(job.problems.join("; ")),
            }
        }
        None if job.problems.is_empty() => PostmortemEnd {
            status: PostmortemStatus::Ok,
            reason: None,
        },
        None => PostmortemEnd {
            status: PostmortemStatus::Failed,
            reason: Some(job.problems.join("; ")),
        },
    })
}

/// The projections and snapshots the prompts are fed from, read once.
struct Material {
    run_id: String,
    status: &'static str,
    ending: String,
    export: Option<Export>,
    last_tail: Option<String>,
    git_status: String,
    git_last_commit: String,
    last_commit_patch_bytes: u64,
    diff_bytes: u64,
    analysis_dir: String,
}

impl Material {
    async fn read(context: &Context) -> Material {
        let records = &context.records;
        let in_analysis = |name: &str| context.files.path(&format!("{ANALYSIS_DIR}/{name}"));
        let text = |name: &str| {
            let path = in_analysis(name);
            async move { tokio::fs::read_to_string(path).await.unwrap_or_default() }
        };
        let bytes = |name: &str| std::fs::metadata(in_analysis(name)).map_or(0, |m| m.len());
        let last_tail = match Summary::fold(records).and_then(|s| s.last_iteration_log) {
            Some(log) => tokio::fs::read_to_string(tail_path_of(&log)).await.ok(),
            None => None,
        };
        let view = RunView::fold(records);
        Material {
            run_id: context.run_id.to_string(),
            status: view.as_ref().map_or("UNKNOWN", |view| view.status.as_str()),
            ending: view.as_ref().map(ending).unwrap_or_default(),
            export: Export::of(records),
            last_tail,
            git_status: text("git-status.txt").await,
            git_last_commit: text("git-last-commit.txt").await,
            last_commit_patch_bytes: bytes("git-last-commit.patch"),
            diff_bytes: bytes("git-diff.patch"),
            analysis_dir: context
                .files
                .path(ANALYSIS_DIR)
                .to_string_lossy()
                .into_owned(),
        }
    }

    fn inputs<'a>(
        &'a self,
        context: &'a Context,
        earlier: &'a [(Analysis, &'a str)],
    ) -> Inputs<'a> {
        let export = self.export.as_ref();
        Inputs {
            run_id: &self.run_id,
            run_name: &context.created.name,
            status: self.status,
            ending: &self.ending,
            spec_path: &context.created.spec_path,
            plan_path: &context.created.plan_path,
            analysis_dir: &self.analysis_dir,
            summary_json: export.map_or("", |e| e.summary_json.as_str()),
            report_tsv: export.map_or("", |e| e.report_tsv.as_str()),
            run_log: export.map_or("", |e| e.run_log.as_str()),
            last_tail: self.last_tail.as_deref(),
            git_status: &self.git_status,
            git_last_commit: &self.git_last_commit,
            last_commit_patch_bytes: self.last_commit_patch_bytes,
            diff_bytes: self.diff_bytes,
            earlier,
        }
    }
}

/// How a run ended, in words: `complete_plan`, `failed: <reason>`.
fn ending(view: &RunView) -> String {
    let exit = view.exit_reason.map_or("", |e| e.as_str());
    match &view.failure_reason {
        Some(reason) => format!("{exit}: {reason}"),
        None => exit.to_owned(),
    }
}

/// Writes `name` in every copy of the run directory and records it.
async fn record_file(
    shared: &Shared,
    context: &Context,
    kind: &str,
    name: &str,
    contents: &[u8],
) -> Result<(), RuntimeError> {
    let written = context
        .files
        .write(kind, name, contents)
        .map_err(|source| RuntimeError::Io {
            what: name.to_owned(),
            source,
        })?;
    record(shared, context.run_id, written).await
}

async fn record(
    shared: &Shared,
    run_id: RunId,
    written: Vec<ArtifactWritten>,
) -> Result<(), RuntimeError> {
    shared
        .journal
        .execute(
            run_id,
            written.into_iter().map(Command::RecordArtifact).collect(),
        )
        .await?;
    Ok(())
}

/// One analysis through the run's agent: its answer, or why there is none.
async fn ask(
    shared: &Shared,
    context: &Context,
    agent: &dyn Agent,
    analysis: Analysis,
    prompt: &str,
    model: &str,
    cancel: &CancellationToken,
) -> Result<String, String> {
    let name = analysis.name();
    let log_name = format!("{ANALYSIS_DIR}/{name}.log");
    let raw_name = format!("{ANALYSIS_DIR}/{name}.jsonl");
    let files = &context.files;
    let mut output = StepOutput::create(
        context.run_id,
        new_step_id(),
        &files.path(&log_name),
        shared.live.clone(),
    )
    .map_err(|error| format!("cannot write {log_name}: {error}"))?;
    let seconds = |key: &str| match context.config.count(key) {
        0 => None,
        secs => Some(Duration::from_secs(secs)),
    };
    let limits = Limits {
        timeout: seconds("claude_timeout_sec"),
        idle: seconds("agent_idle_timeout_sec"),
        after_done: Some(AFTER_RESULT),
    };
    let path_text = |path: PathBuf| path.to_string_lossy().into_owned();
    let env: Vec<(String, String)> = [
        ("LOOP_RUN_ID", context.run_id.to_string()),
        ("LOOP_ITERATION", "0".to_owned()),
        ("LOOP_PHASE", "postmortem".to_owned()),
        ("LOOP_ANALYSIS", name.to_owned()),
        ("LOOP_RUN_DIR", path_text(files.dir().to_owned())),
        (
            "LOOP_SPEC_PATH",
            path_text(in_workdir(
                &context.created,
                &context.workdir,
                &context.created.spec_path,
            )),
        ),
        (
            "LOOP_PLAN_PATH",
            path_text(in_workdir(
                &context.created,
                &context.workdir,
                &context.created.plan_path,
            )),
        ),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    let prompt_file = files.path(&format!("{ANALYSIS_DIR}/{}", analysis.prompt_file()));
    info!(analysis = name, model, "analysis started");
    let reply = agent
        .call(AgentRequest {
            prompt,
            prompt_file: &prompt_file,
            model,
            workdir: &context.workdir,
            env: &env,
            config: &context.config,
            raw_path: &files.path(&raw_name),
            output: &mut output,
            limits,
            cancel,
            now_ms: shared.clock.now_ms(),
        })
        .await;
    let _ = output.finish();
    let mut written = Vec::new();
    for (kind, file) in [
        ("analysis_log", log_name.clone()),
        ("analysis_tail", tail_path_of(&log_name)),
        ("analysis_raw", raw_name),
    ] {
        if files.path(&file).is_file()
            && let Ok(recorded) = files.record(kind, &file)
        {
            written.extend(recorded);
        }
    }
    let _ = record(shared, context.run_id, written).await;
    let reply = reply.map_err(|error| format!("cannot start the agent: {error}"))?;
    match reply.end {
        CallEnd::Success if reply.answer.trim().is_empty() => {
            Err("the agent answered nothing".to_owned())
        }
        CallEnd::Success => Ok(reply.answer),
        CallEnd::UsageLimit { reason, .. } => Err(format!("usage limit: {reason}")),
        CallEnd::Transient { reason } | CallEnd::Auth { reason } | CallEnd::Failed { reason } => {
            Err(reason)
        }
    }
}

/// The git snapshots of the run's working tree into `analysis/`, recorded. A git command that
/// fails leaves what it said in its file (a workspace that is no git repository, a branch
/// that is gone); only a file that cannot be written is an error.
async fn take_snapshots(shared: &Shared, run_id: RunId) -> Result<(), String> {
    let context = context(shared, run_id)
        .await
        .map_err(|error| format!("snapshots: {error}"))?;
    let state = shared
        .journal
        .state(run_id)
        .await
        .map_err(|error| format!("snapshots: {error}"))?;
    let range = state
        .worktree()
        .filter(|w| w.provider != "none" && w.base_branch != w.run_branch)
        .map(|w| format!("{}...{}", w.base_branch, w.run_branch));
    let mut written = Vec::new();
    for name in GIT_SNAPSHOTS {
        let args: Vec<&str> = match name {
            "git-status.txt" => vec!["status", "--short", "--branch", "--untracked-files=all"],
            "git-last-commit.txt" => vec!["log", "-1", "--stat", "--no-color", "--format=fuller"],
            "git-last-commit.patch" => vec!["format-patch", "-1", "--stdout", "--no-color", "HEAD"],
            _ => match &range {
                Some(range) => vec!["diff", "--no-color", "--no-ext-diff", range.as_str()],
                // The run worked on the workspace's own branch: there is no branch to compare.
                None => Vec::new(),
            },
        };
        let relative = format!("{ANALYSIS_DIR}/{name}");
        let path = context.files.path(&relative);
        git_to_file(&context.workdir, &args, &path)
            .await
            .map_err(|error| format!("{relative}: {error}"))?;
        written.extend(
            context
                .files
                .record("git_snapshot", &relative)
                .map_err(|error| format!("{relative}: {error}"))?,
        );
    }
    record(shared, run_id, written)
        .await
        .map_err(|error| format!("snapshots: {error}"))
}

/// `git <args>` in `dir` with its output streamed into `path` (a patch can be large); on
/// failure the file holds what git said. No args: an empty file.
async fn git_to_file(dir: &Path, args: &[&str], path: &Path) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    if args.is_empty() {
        return Ok(());
    }
    let child = tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let failure = match child {
        Err(error) => Some(format!("cannot run git: {error}")),
        Ok(mut child) => {
            let mut stderr = String::new();
            let waited = tokio::time::timeout(GIT_TIMEOUT, async {
                if let Some(mut err) = child.stderr.take() {
                    let _ = err.read_to_string(&mut stderr).await;
                }
                child.wait().await
            })
            .await;
            match waited {
                Ok(Ok(status)) if status.success() => None,
                Ok(Ok(_)) => Some(stderr.trim().to_owned()),
                Ok(Err(error)) => Some(error.to_string()),
                Err(_) => Some(format!("no answer within {} s", GIT_TIMEOUT.as_secs())),
            }
        }
    };
    if let Some(failure) = failure {
        std::fs::write(path, format!("git {} failed: {failure}\n", args.join(" ")))?;
    }
    Ok(())
}

impl Runtime {
    /// Starts a postmortem of a finished run now, whatever its `postmortem` key says: records
    /// `POSTMORTEM_START`, then snapshots, prompts and analyses in the background (see
    /// [`Runtime::wait_postmortem`]). `model` overrides the run's review model; `prompt_only`
    /// writes the snapshots and prompts, asks no agent and ends `skipped`.
    ///
    /// Refused (a [`RuntimeError::Domain`]) while the run is not finished or a postmortem of
    /// it is running.
    pub async fn postmortem(
        &self,
        run_id: RunId,
        model: Option<String>,
        prompt_only: bool,
    ) -> Result<PostmortemReport, RuntimeError> {
        let state = self.shared.journal.state(run_id).await?;
        if state.status().is_none() {
            return Err(RuntimeError::UnknownRun(run_id));
        }
        let reason = match (&model, prompt_only) {
            (_, true) => "prompt only".to_owned(),
            (Some(model), false) => format!("on demand (model {model})"),
            (None, false) => "on demand".to_owned(),
        };
        start(&self.shared, run_id, reason).await?;
        let job = Job {
            run_id,
            model,
            prompt_only,
            snapshot: true,
            problems: Vec::new(),
        };
        self.shared.postmortems.spawn(&self.shared, job);
        self.postmortem_report(run_id).await
    }

    /// The state of the run's last postmortem and the files of its `analysis/` directory.
    pub async fn postmortem_report(&self, run_id: RunId) -> Result<PostmortemReport, RuntimeError> {
        let records = self.shared.journal.read_run(run_id).await?;
        let Some(Event::RunCreated(created)) = records.first().map(|r| &r.event) else {
            return Err(RuntimeError::UnknownRun(run_id));
        };
        let config = Config::from_frozen(&created.config);
        let dir = RunFiles::new(created, run_id, &config, &self.shared.data_dir).path(ANALYSIS_DIR);
        let mut report = PostmortemReport {
            run_id,
            status: None,
            started_because: None,
            reason: None,
            dir: dir.to_string_lossy().into_owned(),
            files: list_files(&dir),
        };
        for record in &records {
            match &record.event {
                Event::PostmortemStart(start) => {
                    report.status = Some("running".to_owned());
                    report.started_because = Some(start.reason.clone());
                    report.reason = None;
                }
                Event::PostmortemEnd(end) => {
                    report.status = Some(end.status.as_str().to_owned());
                    report.reason.clone_from(&end.reason);
                }
                _ => {}
            }
        }
        Ok(report)
    }

    /// Waits until the run's postmortem (if one is running) has ended, and returns its report.
    pub async fn wait_postmortem(&self, run_id: RunId) -> Result<PostmortemReport, RuntimeError> {
        // Listen first: the task may end between the look-up and the wait.
        let mut done = self.shared.postmortems.done.subscribe();
        let view = self.get(run_id).await?;
        if view.postmortem.as_deref() == Some("running") {
            let mut events = self.subscribe(Some(run_id), view.last_seq);
            loop {
                match events.next().await {
                    Some(Ok(record)) if matches!(record.event, Event::PostmortemEnd(_)) => break,
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(error),
                    None => return Err(RuntimeError::Shutdown),
                }
            }
        }
        // The end is recorded before the projection files are rewritten: wait for those too.
        while self.shared.postmortems.running(run_id) {
            match done.recv().await {
                Ok(id) if id == run_id => break,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
        self.postmortem_report(run_id).await
    }
}

fn list_files(dir: &Path) -> Vec<AnalysisFile> {
    let mut files: Vec<AnalysisFile> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| AnalysisFile {
            name: entry.file_name().to_string_lossy().into_owned(),
            bytes: entry.metadata().map_or(0, |m| m.len()),
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}
