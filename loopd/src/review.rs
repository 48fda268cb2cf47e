//! The review endpoints: diff, merge, scrap, create-pr on a finished run, and the worktrees of
//! finished runs (list, remove, gc).

use std::path::PathBuf;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{AppState, Body, run_id};
use crate::error::ApiError;

pub async fn diff(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let diff = state.runtime.diff(run_id(&id)?).await?;
    Ok(Json(json!({ "diff": diff })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    strategy: Option<String>,
    target: Option<String>,
}

pub async fn merge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(body): Body<MergeBody>,
) -> Result<Json<Value>, ApiError> {
    let merged = state
        .runtime
        .merge(
            run_id(&id)?,
            body.strategy.as_deref(),
            body.target.as_deref(),
        )
        .await?;
    Ok(Json(json!({ "merge": merged })))
}

pub async fn scrap(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let scrapped = state.runtime.scrap(run_id(&id)?).await?;
    Ok(Json(json!({ "scrap": scrapped })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullRequestBody {
    title: Option<String>,
    body: Option<String>,
}

pub async fn create_pr(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(body): Body<PullRequestBody>,
) -> Result<Json<Value>, ApiError> {
    let pr = state
        .runtime
        .create_pr(run_id(&id)?, body.title.as_deref(), body.body.as_deref())
        .await?;
    Ok(Json(json!({ "pull_request": pr })))
}

#[derive(Debug, Deserialize)]
pub struct WorkspaceQuery {
    workspace_root: Option<PathBuf>,
}

pub async fn worktrees(
    State(state): State<AppState>,
    Query(query): Query<WorkspaceQuery>,
) -> Result<Json<Value>, ApiError> {
    let worktrees = state
        .runtime
        .worktrees(query.workspace_root.as_deref())
        .await?;
    Ok(Json(json!({ "worktrees": worktrees })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcBody {
    #[serde(default)]
    dry_run: bool,
    older_than_days: Option<f64>,
    workspace_root: Option<PathBuf>,
}

pub async fn gc(
    State(state): State<AppState>,
    Body(body): Body<GcBody>,
) -> Result<Json<Value>, ApiError> {
    let older_than = match body.older_than_days {
        Some(days) if days.is_finite() && days >= 0.0 => {
            Some(Duration::from_secs_f64(days * 86_400.0))
        }
        Some(days) => {
            return Err(ApiError::bad_request(format!(
                "field `older_than_days`: {days} is not a number of days ≥ 0"
            )));
        }
        None => None,
    };
    let report = state
        .runtime
        .gc(body.workspace_root.as_deref(), body.dry_run, older_than)
        .await?;
    Ok(Json(json!({ "gc": report })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveWorktreeBody {
    path: PathBuf,
    #[serde(default)]
    force: bool,
}

pub async fn remove_worktree(
    State(state): State<AppState>,
    Body(body): Body<RemoveWorktreeBody>,
) -> Result<Json<Value>, ApiError> {
    let removed = state
        .runtime
        .remove_worktree(&body.path, body.force)
        .await?;
    Ok(Json(json!({ "worktree": removed })))
}
