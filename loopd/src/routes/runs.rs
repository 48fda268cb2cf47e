//! Runs: create, list, look up, read, and the state changes.

use std::path::PathBuf;

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use loop_api::runs::{CreateRun, CreateRunError, RunEnvelope, RunsPage, StepsEnvelope};
use loop_core::{RunId, RunStatus};
use loop_runtime::RunRequest;
use loop_store::RunQuery;
use serde::Deserialize;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{PathParams, QueryParams, body_bytes, run_id};
use crate::state::AppState;

/// A `POST /runs` body, read the way [`CreateRun::from_json`] reads it.
pub struct RunBody(pub CreateRun);

impl<S: Send + Sync> FromRequest<S> for RunBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(request, state).await?;
        CreateRun::from_json(&bytes)
            .map(RunBody)
            .map_err(|error| ApiError::bad_request(error.to_string()))
    }
}

/// The run request a `POST /runs` body describes (what the handler submits).
pub fn run_request(body: CreateRun) -> Result<RunRequest, ApiError> {
    let config = body.layer().map_err(|error| match error {
        CreateRunError::Body(error) => ApiError::bad_request(error.to_string()),
        CreateRunError::Config(error) => ApiError::from(loop_runtime::RuntimeError::from(error)),
    })?;
    Ok(RunRequest {
        repo_url: body.repo_url,
        workspace_root: PathBuf::from(body.workspace_root),
        spec_path: body.spec_path,
        plan_path: body.plan_path,
        name: body.name,
        config,
        config_file: None,
    })
}

/// Starts a run (it is queued when the daemon is at its limits).
#[utoipa::path(
    post,
    path = "/runs",
    tag = "runs",
    request_body = CreateRun,
    responses(
        (status = 201, description = "The run, created.", body = RunEnvelope),
        (status = 400, description = "A bad field, named.", body = ErrorBody),
        (status = 404, description = "The spec, the plan or the workspace is missing.",
            body = ErrorBody),
        (status = 409, description = "The plan has nothing left to do (`plan_complete`).",
            body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB.", body = ErrorBody),
        (status = 503, description = "The event log refuses writes (`store_unavailable`).",
            body = ErrorBody),
    ),
)]
pub async fn create_run(
    State(state): State<AppState>,
    RunBody(body): RunBody,
) -> Result<(StatusCode, Json<RunEnvelope>), ApiError> {
    let run = state.runtime.submit(run_request(body)?).await?;
    Ok((StatusCode::CREATED, Json(RunEnvelope { run })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only runs in this status (any case).
    #[param(value_type = Option<RunStatus>)]
    status: Option<String>,
    /// Only runs of this workspace.
    workspace_root: Option<String>,
    /// Runs per page: 100 unless given; any other number is brought into 1–1000.
    limit: Option<usize>,
    /// Only runs older than this one: the `next` of the previous page.
    #[param(value_type = Option<RunId>)]
    before: Option<String>,
}

/// The most runs one page holds.
const MAX_PAGE: usize = 1000;

/// Lists runs, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/runs",
    tag = "runs",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of runs.", body = RunsPage),
        (status = 400, description = "A bad query parameter, named.", body = ErrorBody),
    ),
)]
pub async fn list_runs(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<RunsPage>, ApiError> {
    let status = match &query.status {
        Some(text) => Some(
            text.parse::<RunStatus>()
                .map_err(|error| ApiError::bad_request(format!("query `status`: {error}")))?,
        ),
        None => None,
    };
    let before = match &query.before {
        Some(text) => Some(text.parse::<RunId>().map_err(|_| {
            ApiError::bad_request(format!("query `before`: {text:?} is not a run id"))
        })?),
        None => None,
    };
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let runs = state
        .runtime
        .list(RunQuery {
            status,
            workspace_root: query.workspace_root,
            before,
            limit: Some(limit),
        })
        .await?;
    let next = (runs.len() == limit).then(|| runs.last().map(|run| run.id));
    Ok(Json(RunsPage {
        runs,
        next: next.flatten(),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LookupQuery {
    /// How a person names the run: its id, a unique id prefix, its name, or its branch.
    #[serde(rename = "ref")]
    #[param(rename = "ref")]
    reference: String,
}

/// The run a person's reference means: its id, a unique id prefix, its name or its branch.
#[utoipa::path(
    get,
    path = "/runs/lookup",
    tag = "runs",
    params(LookupQuery),
    responses(
        (status = 200, description = "The one run it means.", body = RunEnvelope),
        (status = 404, description = "No run matches.", body = ErrorBody),
        (status = 409, description = "Several runs match (`ambiguous`); `runs` lists them.",
            body = loop_api::runs::Candidates),
    ),
)]
pub async fn lookup_run(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<LookupQuery>,
) -> Result<Json<RunEnvelope>, ApiError> {
    let run = state.runtime.find(&query.reference).await?;
    Ok(Json(RunEnvelope { run }))
}

/// One run.
#[utoipa::path(
    get,
    path = "/runs/{id}",
    tag = "runs",
    params(("id" = RunId, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The run.", body = RunEnvelope),
        (status = 404, description = "No such run.", body = ErrorBody),
    ),
)]
pub async fn get_run(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<RunEnvelope>, ApiError> {
    let run = state.runtime.get(run_id(&id)?).await?;
    Ok(Json(RunEnvelope { run }))
}

/// A run's steps, in the order they started.
#[utoipa::path(
    get,
    path = "/runs/{id}/steps",
    tag = "runs",
    params(("id" = RunId, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The run's steps.", body = StepsEnvelope),
        (status = 404, description = "No such run.", body = ErrorBody),
    ),
)]
pub async fn steps(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<StepsEnvelope>, ApiError> {
    let id = run_id(&id)?;
    state.runtime.get(id).await?;
    let steps = state.runtime.steps(id).await?;
    Ok(Json(StepsEnvelope { steps }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PauseQuery {
    /// `true`: stop the agent's call in flight now (its step is recorded CANCELED and runs
    /// again on resume). Otherwise the run pauses once its current step ends.
    now: Option<bool>,
}

/// Pauses a run once its current step ends (`pause_requested` until then), or at once with
/// `?now=true`.
#[utoipa::path(
    post,
    path = "/runs/{id}/pause",
    tag = "runs",
    params(("id" = RunId, Path, description = "The run's id."), PauseQuery),
    responses(
        (status = 200, description = "The run: paused, or RUNNING with `pause_requested` until its step ends.", body = RunEnvelope),
        (status = 404, description = "No such run.", body = ErrorBody),
        (status = 409, description = "The run cannot be paused where it stands.", body = ErrorBody),
    ),
)]
pub async fn pause(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    QueryParams(query): QueryParams<PauseQuery>,
) -> Result<Json<RunEnvelope>, ApiError> {
    let id = run_id(&id)?;
    let run = if query.now == Some(true) {
        state.runtime.pause(id).await?
    } else {
        state.runtime.request_pause(id).await?
    };
    Ok(Json(RunEnvelope { run }))
}

/// Resumes a paused run.
#[utoipa::path(
    post,
    path = "/runs/{id}/resume",
    tag = "runs",
    params(("id" = RunId, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The run, resumed.", body = RunEnvelope),
        (status = 404, description = "No such run.", body = ErrorBody),
        (status = 409, description = "The run cannot be resumed where it stands.", body = ErrorBody),
    ),
)]
pub async fn resume(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<RunEnvelope>, ApiError> {
    let run = state.runtime.resume(run_id(&id)?).await?;
    Ok(Json(RunEnvelope { run }))
}

/// Cancels a run.
#[utoipa::path(
    post,
    path = "/runs/{id}/cancel",
    tag = "runs",
    params(("id" = RunId, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The run, canceled.", body = RunEnvelope),
        (status = 404, description = "No such run.", body = ErrorBody),
        (status = 409, description = "The run has already ended.", body = ErrorBody),
    ),
)]
pub async fn cancel(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<RunEnvelope>, ApiError> {
    let run = state.runtime.cancel(run_id(&id)?).await?;
    Ok(Json(RunEnvelope { run }))
}

/// Retries a failed run from where it failed.
#[utoipa::path(
    post,
    path = "/runs/{id}/retry",
    tag = "runs",
    params(("id" = RunId, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The run, pending again.", body = RunEnvelope),
        (status = 404, description = "No such run.", body = ErrorBody),
        (status = 409, description = "The run cannot be retried where it stands.", body = ErrorBody),
    ),
)]
pub async fn retry(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<RunEnvelope>, ApiError> {
    let run = state.runtime.retry(run_id(&id)?).await?;
    Ok(Json(RunEnvelope { run }))
}
