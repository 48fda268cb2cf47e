//! The review endpoints: diff, merge, scrap, create-pr on a finished run, and the worktrees of
//! finished runs (list, remove, gc).

use std::path::PathBuf;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use loop_api::comments::{CommentBody, CommentEnvelope, CommentsEnvelope, RequestChangesBody};
use loop_api::review::{
    DiffEnvelope, GcBody, GcEnvelope, MergeBody, MergeEnvelope, PullRequestBody,
    PullRequestEnvelope, RemoveWorktreeBody, ScrapEnvelope, WorktreeEnvelope, WorktreesEnvelope,
};
use loop_api::runs::RunEnvelope;
use loop_core::RunId;
use loop_core::event::ReviewComment;
use serde::Deserialize;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{Body, PathParams, QueryParams, run_id};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// One commit of the run against its parent instead (an experiment's candidate, kept on
    /// the run branch or discarded under `refs/loop/experiments/<run>/`): 7 to 40 hex digits.
    commit: Option<String>,
}

/// The run's work against its base branch: commits, files, patches; or one of its commits.
#[utoipa::path(
    get,
    path = "/runs/{id}/diff",
    tag = "review",
    params(("id" = RunId, Path, description = "The run's id."), DiffQuery),
    responses(
        (status = 200, description = "The run's diff.", body = DiffEnvelope),
        (status = 400, description = "The run has no branch to compare, or the commit is not one of the run's.", body = ErrorBody),
        (status = 404, description = "No such run.", body = ErrorBody),
        (status = 409, description = "The run is still working.", body = ErrorBody),
    ),
)]
pub async fn diff(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    QueryParams(query): QueryParams<DiffQuery>,
) -> Result<Json<DiffEnvelope>, ApiError> {
    let run_id = run_id(&id)?;
    let diff = match query.commit.as_deref() {
        Some(commit) => state.runtime.commit_diff(run_id, commit).await?,
        None => state.runtime.diff(run_id).await?,
    };
    Ok(Json(DiffEnvelope { diff }))
}

/// Comments on a line of a finished run's diff. The comment waits, with the run's others, for
/// a request for changes.
#[utoipa::path(
    post,
    path = "/runs/{id}/comments",
    tag = "review",
    params(("id" = RunId, Path, description = "The run's id.")),
    request_body = CommentBody,
    responses(
        (status = 201, description = "The comment, recorded.", body = CommentEnvelope),
        (status = 400, description = "No path, no line or no words.", body = ErrorBody),
        (status = 404, description = "No such run.", body = ErrorBody),
        (status = 409, description = "The run is still working.", body = ErrorBody),
    ),
)]
pub async fn comment(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    Body(body): Body<CommentBody>,
) -> Result<(StatusCode, Json<CommentEnvelope>), ApiError> {
    let comment = ReviewComment {
        path: body.path,
        line: body.line,
        body: body.body,
        side: body.side,
    };
    let comment = state.runtime.comment(run_id(&id)?, comment).await?;
    Ok((StatusCode::CREATED, Json(CommentEnvelope { comment })))
}

/// The run's review comments, in the order they were made, each saying which request for
/// changes took it to the agent.
#[utoipa::path(
    get,
    path = "/runs/{id}/comments",
    tag = "review",
    params(("id" = RunId, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The comments.", body = CommentsEnvelope),
        (status = 404, description = "No such run.", body = ErrorBody),
    ),
)]
pub async fn comments(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<CommentsEnvelope>, ApiError> {
    let comments = state.runtime.comments(run_id(&id)?).await?;
    Ok(Json(CommentsEnvelope { comments }))
}

/// Sends a finished run back to work with the comments made since it last went back: it is
/// PENDING again, and its next implementation iteration is asked to make them, then reviewed
/// and verified as any other.
#[utoipa::path(
    post,
    path = "/runs/{id}/request-changes",
    tag = "review",
    params(("id" = RunId, Path, description = "The run's id.")),
    request_body(content = Option<RequestChangesBody>, description = "May be empty when there are comments."),
    responses(
        (status = 200, description = "The run, pending again.", body = RunEnvelope),
        (status = 404, description = "No such run.", body = ErrorBody),
        (status = 409, description = "The run is still working, has no worktree, or nothing was \
            asked for.", body = ErrorBody),
    ),
)]
pub async fn request_changes(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    Body(body): Body<RequestChangesBody>,
) -> Result<Json<RunEnvelope>, ApiError> {
    let run = state
        .runtime
        .request_changes(run_id(&id)?, body.body)
        .await?;
    Ok(Json(RunEnvelope { run }))
}

/// Merges a finished run's branch, after its checks pass in a worktree of the target.
#[utoipa::path(
    post,
    path = "/runs/{id}/merge",
    tag = "review",
    params(("id" = RunId, Path, description = "The run's id.")),
    request_body(content = Option<MergeBody>, description = "May be empty."),
    responses(
        (status = 200, description = "The merge landed.", body = MergeEnvelope),
        (status = 400, description = "A bad field, or nothing to merge.", body = ErrorBody),
        (status = 404, description = "No such run.", body = ErrorBody),
        (status = 409, description = "A conflict or a failing check: the target is unchanged.",
            body = ErrorBody),
    ),
)]
pub async fn merge(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    Body(body): Body<MergeBody>,
) -> Result<Json<MergeEnvelope>, ApiError> {
    let merge = state
        .runtime
        .merge(
            run_id(&id)?,
            body.strategy.as_deref(),
            body.target.as_deref(),
        )
        .await?;
    Ok(Json(MergeEnvelope { merge }))
}

/// Removes a finished run's worktree and deletes its branch.
#[utoipa::path(
    post,
    path = "/runs/{id}/scrap",
    tag = "review",
    params(("id" = RunId, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "What was removed.", body = ScrapEnvelope),
        (status = 404, description = "No such run.", body = ErrorBody),
        (status = 409, description = "The run is still working.", body = ErrorBody),
    ),
)]
pub async fn scrap(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<ScrapEnvelope>, ApiError> {
    let scrap = state.runtime.scrap(run_id(&id)?).await?;
    Ok(Json(ScrapEnvelope { scrap }))
}

/// Pushes a finished run's branch and opens a pull request for it.
#[utoipa::path(
    post,
    path = "/runs/{id}/create-pr",
    tag = "review",
    params(("id" = RunId, Path, description = "The run's id.")),
    request_body(content = Option<PullRequestBody>, description = "May be empty."),
    responses(
        (status = 200, description = "The pull request.", body = PullRequestEnvelope),
        (status = 400, description = "A bad field, or no remote to push to.", body = ErrorBody),
        (status = 404, description = "No such run.", body = ErrorBody),
        (status = 409, description = "The run is still working.", body = ErrorBody),
    ),
)]
pub async fn create_pr(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    Body(body): Body<PullRequestBody>,
) -> Result<Json<PullRequestEnvelope>, ApiError> {
    let pull_request = state
        .runtime
        .create_pr(run_id(&id)?, body.title.as_deref(), body.body.as_deref())
        .await?;
    Ok(Json(PullRequestEnvelope { pull_request }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkspaceQuery {
    /// Only the worktrees of this workspace's runs.
    #[param(value_type = Option<String>)]
    workspace_root: Option<PathBuf>,
}

/// The worktrees runs still have on disk, newest run first, with their sizes.
#[utoipa::path(
    get,
    path = "/worktrees",
    tag = "review",
    params(WorkspaceQuery),
    responses(
        (status = 200, description = "The worktrees.", body = WorktreesEnvelope),
        (status = 400, description = "A bad query parameter.", body = ErrorBody),
    ),
)]
pub async fn worktrees(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<WorkspaceQuery>,
) -> Result<Json<WorktreesEnvelope>, ApiError> {
    let worktrees = state
        .runtime
        .worktrees(query.workspace_root.as_deref())
        .await?;
    Ok(Json(WorktreesEnvelope { worktrees }))
}

/// Removes the worktrees of finished runs (their branches stay).
#[utoipa::path(
    post,
    path = "/gc",
    tag = "review",
    request_body(content = Option<GcBody>, description = "May be empty."),
    responses(
        (status = 200, description = "What was removed, or would be.", body = GcEnvelope),
        (status = 400, description = "A bad field, named.", body = ErrorBody),
    ),
)]
pub async fn gc(
    State(state): State<AppState>,
    Body(body): Body<GcBody>,
) -> Result<Json<GcEnvelope>, ApiError> {
    // Not `from_secs_f64`: it panics on an age no `Duration` holds (1e300 days).
    let older_than = match body.older_than_days {
        Some(days) => Some(Duration::try_from_secs_f64(days * 86_400.0).map_err(|_| {
            ApiError::bad_request(format!(
                "field `older_than_days`: {days} is not a number of days ≥ 0 a clock can count"
            ))
        })?),
        None => None,
    };
    let gc = state
        .runtime
        .gc(body.workspace_root.as_deref(), body.dry_run, older_than)
        .await?;
    Ok(Json(GcEnvelope { gc }))
}

/// Removes one run worktree.
#[utoipa::path(
    post,
    path = "/worktrees/remove",
    tag = "review",
    request_body = RemoveWorktreeBody,
    responses(
        (status = 200, description = "The worktree removed.", body = WorktreeEnvelope),
        (status = 400, description = "Not a run's worktree, or its run is working.",
            body = ErrorBody),
    ),
)]
pub async fn remove_worktree(
    State(state): State<AppState>,
    Body(body): Body<RemoveWorktreeBody>,
) -> Result<Json<WorktreeEnvelope>, ApiError> {
    let worktree = state
        .runtime
        .remove_worktree(&body.path, body.force)
        .await?;
    Ok(Json(WorktreeEnvelope { worktree }))
}
