//! A run's plan as its working tree has it now: the checklist the dashboard shows while the
//! agent ticks it off. Read-only, and nothing outside the run's working tree is read.

use std::path::{Path, PathBuf};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use loop_core::RunId;
use loop_core::plan::{Plan, TaskState};
use loop_core::projection::RunView;
use loop_runtime::confined::{self, Refused};
use serde::Serialize;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{PathParams, run_id};
use crate::state::AppState;

/// The largest plan served; a plan is a checklist, not a data file.
const MAX_PLAN: u64 = 1 << 20;

/// `{"plan": PlanFile}`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PlanEnvelope {
    pub plan: PlanFile,
}

/// The plan file now.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PlanFile {
    /// As the run was given it (`plan_path`).
    pub path: String,
    /// The file read: in the run's worktree, or in the workspace for a run without one (or
    /// whose worktree was removed).
    pub read_from: String,
    pub text: String,
    /// Tasks that count toward completion, done or reviewed.
    pub tasks_done: u32,
    /// Tasks that count toward completion.
    pub tasks_total: u32,
    /// Every box of the checklist, in file order.
    pub tasks: Vec<PlanTask>,
}

/// One box of the checklist.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PlanTask {
    /// 1-based line in the file.
    pub line: usize,
    pub state: PlanTaskState,
    /// `- [ ]?`: never blocks completion.
    pub optional: bool,
    /// Whether it counts toward completion (not optional, not a check for a person).
    pub blocking: bool,
    pub text: String,
    /// The nearest heading above it.
    pub section: Option<String>,
}

/// `- [ ]` pending, `- [x]` done (awaiting review), `- [R]` reviewed, `- [~]` blocked.
#[derive(Clone, Copy, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanTaskState {
    Pending,
    Done,
    Reviewed,
    Blocked,
}

impl From<TaskState> for PlanTaskState {
    fn from(state: TaskState) -> PlanTaskState {
        match state {
            TaskState::Pending => PlanTaskState::Pending,
            TaskState::Done => PlanTaskState::Done,
            TaskState::Reviewed => PlanTaskState::Reviewed,
            TaskState::Blocked => PlanTaskState::Blocked,
        }
    }
}

/// The run's plan as its working tree has it now, and its tasks.
#[utoipa::path(
    get,
    path = "/runs/{id}/plan",
    tag = "runs",
    params(("id" = RunId, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The plan's text and tasks.", body = PlanEnvelope),
        (status = 400, description = "The plan path leads out of the run's working tree.",
            body = ErrorBody),
        (status = 404, description = "No such run, or no plan file (yet).", body = ErrorBody),
        (status = 422, description = "The plan file is larger than 1 MiB (`plan_too_large`), or \
            not a regular file: a FIFO, a device (`unreadable_file`).", body = ErrorBody),
    ),
)]
pub async fn plan(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<PlanEnvelope>, ApiError> {
    let run = state.runtime.get(run_id(&id)?).await?;
    // Given up after a while: a hung file system holds a thread, never the answer.
    let reading = tokio::task::spawn_blocking(move || read(&run));
    tokio::time::timeout(confined::READ_TIMEOUT, reading)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unreadable_file",
                format!("reading the plan took over {:?}", confined::READ_TIMEOUT),
            )
        })?
        .map_err(|error| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("cannot read the plan: {error}"),
            )
        })?
        .map(|plan| Json(PlanEnvelope { plan }))
}

/// Where the run works: its worktree while it is there, else its workspace (as the runtime
/// decides it for the agent).
fn workdir(run: &RunView) -> PathBuf {
    run.worktree
        .worktree_path
        .as_deref()
        .filter(|_| !run.worktree.removed)
        .map(PathBuf::from)
        .filter(|path| path.is_dir())
        .unwrap_or_else(|| PathBuf::from(&run.workspace_root))
}

fn read(run: &RunView) -> Result<PlanFile, ApiError> {
    let workdir = workdir(run);
    // The plan path is relative to the workspace, or absolute inside it.
    let relative = confined::beneath(Path::new(&run.workspace_root), Path::new(&run.plan_path));
    // The agent may have made the plan anything: only a regular file inside the working tree
    // is read, without blocking (a FIFO), and not past the limit.
    let bytes = confined::read(&workdir, relative, MAX_PLAN).map_err(|refused| {
        let why = format!("the plan {:?}: {refused}", run.plan_path);
        match refused {
            Refused::Outside { .. } => ApiError::bad_request(why),
            Refused::Missing => {
                ApiError::not_found(format!("no plan file at {:?} yet", run.plan_path))
            }
            Refused::TooLarge { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "plan_too_large",
                format!("the plan {:?} is larger than 1 MiB", run.plan_path),
            ),
            Refused::NotRegular(_) | Refused::TimedOut | Refused::Io(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unreadable_file", why)
            }
        }
    })?;
    let path = workdir.join(relative);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let plan = Plan::parse(&text);
    Ok(PlanFile {
        path: run.plan_path.clone(),
        read_from: path.to_string_lossy().into_owned(),
        tasks_done: plan.tasks_done(),
        tasks_total: plan.tasks_total(),
        tasks: plan
            .tasks
            .into_iter()
            .map(|task| PlanTask {
                line: task.line,
                state: task.state.into(),
                optional: task.optional,
                blocking: task.blocking,
                text: task.text,
                section: task.section,
            })
            .collect(),
        text,
    })
}
