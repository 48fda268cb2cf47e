//! Knowing what happened: a run's postmortem (started on demand, its analysis files listed)
//! and the figures across runs.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use loop_api::insight::{ExperimentReport, PostmortemBody, PostmortemEnvelope, StatsEnvelope};
use loop_core::RunId;
use loop_core::stats::parse_age;
use serde::Deserialize;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{Body, PathParams, QueryParams, run_id};
use crate::state::AppState;

/// Starts a postmortem of a finished run; it runs in the background.
#[utoipa::path(
    post,
    path = "/runs/{id}/postmortem",
    tag = "insight",
    params(("id" = RunId, Path, description = "The run's id.")),
    request_body(content = Option<PostmortemBody>, description = "May be empty."),
    responses(
        (status = 202, description = "Started: `status` is `running`.", body = PostmortemEnvelope),
        (status = 400, description = "A bad field, named.", body = ErrorBody),
        (status = 404, description = "No such run.", body = ErrorBody),
        (status = 409, description = "The run is not finished, or a postmortem of it is running.",
            body = ErrorBody),
    ),
)]
pub async fn start_postmortem(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    Body(body): Body<PostmortemBody>,
) -> Result<(StatusCode, Json<PostmortemEnvelope>), ApiError> {
    let model = body.model.filter(|model| !model.trim().is_empty());
    if let Some(model) = &model
        && (model.len() > MAX_MODEL_NAME || model.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(format!(
            "field `model`: a model name of at most {MAX_MODEL_NAME} printable characters"
        )));
    }
    let postmortem = state
        .runtime
        .postmortem(run_id(&id)?, model, body.prompt_only)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(PostmortemEnvelope { postmortem }),
    ))
}

/// The run's last postmortem and the files of its analysis directory.
#[utoipa::path(
    get,
    path = "/runs/{id}/postmortem",
    tag = "insight",
    params(("id" = RunId, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The postmortem and its files.", body = PostmortemEnvelope),
        (status = 404, description = "No such run.", body = ErrorBody),
    ),
)]
pub async fn postmortem(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<PostmortemEnvelope>, ApiError> {
    let postmortem = state.runtime.postmortem_report(run_id(&id)?).await?;
    Ok(Json(PostmortemEnvelope { postmortem }))
}

/// An experiment's table (the rows of `experiments.tsv`), the later measurements of its
/// starting commit, and where it stands (`summary.json`'s experiment section).
#[utoipa::path(
    get,
    path = "/runs/{id}/experiment",
    tag = "insight",
    params(("id" = RunId, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The experiment.", body = ExperimentReport),
        (status = 404, description = "No such run, or it is not an experiment.", body = ErrorBody),
    ),
)]
pub async fn experiment(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<ExperimentReport>, ApiError> {
    Ok(Json(state.runtime.experiment(run_id(&id)?).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Only runs created this recently: `7d`, `24h`, `90m`, `2w`.
    since: Option<String>,
    /// Only runs of this workspace root.
    workspace_root: Option<String>,
}

/// Outcomes, iterations, time and cost per task, pass rates, waits and retries across runs,
/// and the runs by the day they were created.
#[utoipa::path(
    get,
    path = "/stats",
    tag = "insight",
    params(StatsQuery),
    responses(
        (status = 200, description = "The figures.", body = StatsEnvelope),
        (status = 400, description = "A bad query parameter, named.", body = ErrorBody),
    ),
)]
pub async fn stats(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<StatsQuery>,
) -> Result<Json<StatsEnvelope>, ApiError> {
    let since = match query.since.as_deref() {
        Some(text) => Some(Duration::from_millis(
            parse_age(text)
                .map_err(|error| ApiError::bad_request(format!("query `since`: {error}")))?
                as u64,
        )),
        None => None,
    };
    let stats = state.runtime.stats(since, query.workspace_root).await?;
    Ok(Json(StatsEnvelope::new(stats)))
}

/// The longest model name a postmortem request may give (it is recorded in the log).
const MAX_MODEL_NAME: usize = 200;
