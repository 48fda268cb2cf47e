//! A run's files: listed, and served one at a time a piece at a time, nothing outside the run
//! directory.

use std::path::{Component, Path};

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use loop_api::meta::{Artifact, ArtifactsEnvelope};
use loop_core::RunId;
use loop_runtime::confined;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{PathParams, run_id};
use crate::proxy::Upstream;
use crate::state::AppState;

/// The files of a run's directory.
#[utoipa::path(
    get,
    path = "/runs/{id}/artifacts",
    tag = "runs",
    params(("id" = RunId, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "Every file of the run directory.", body = ArtifactsEnvelope),
        (status = 404, description = "No such run.", body = ErrorBody),
    ),
)]
pub async fn list_artifacts(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let id = run_id(&id)?;
    // A run whose files are on another node's machine: that node answers.
    if let Some(owner) = state.runtime.files_elsewhere(id).await?
        && let Some(answer) =
            crate::proxy::get(&state, &owner, Upstream::Artifacts { run: id }).await?
    {
        return Ok(answer);
    }
    let dir = state.runtime.run_dir(id).await?;
    Ok(Json(ArtifactsEnvelope {
        artifacts: list(&dir),
    })
    .into_response())
}

/// One file of a run's directory, and nothing outside it.
#[utoipa::path(
    get,
    path = "/runs/{id}/artifacts/{*name}",
    tag = "runs",
    params(
        ("id" = RunId, Path, description = "The run's id."),
        ("name" = String, Path, description = "The file's path in the run directory."),
    ),
    responses(
        (status = 200, description = "The file: JSON for `.json` and `.jsonl`, else text.",
            content(("application/json"), ("text/plain"))),
        (status = 400, description = "The name leaves the run directory.", body = ErrorBody),
        (status = 404, description = "No such run or file.", body = ErrorBody),
    ),
)]
pub async fn artifact(
    State(state): State<AppState>,
    PathParams((id, name)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let id = run_id(&id)?;
    if let Some(owner) = state.runtime.files_elsewhere(id).await?
        && let Some(answer) = crate::proxy::get(
            &state,
            &owner,
            Upstream::Artifact {
                run: id,
                name: &name,
            },
        )
        .await?
    {
        return Ok(answer);
    }
    let dir = state.runtime.run_dir(id).await?;
    let file = open(&dir, &name).await?;
    let length = file.1;
    let file = tokio::fs::File::from_std(file.0);
    let kind = if name.ends_with(".json") || name.ends_with(".jsonl") {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    // Streamed a piece at a time: a 100 MB log costs a download 64 KiB of memory, not 100 MB.
    // A log still being written is sent as long as it was when asked for.
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        tokio::io::AsyncReadExt::take(file, length),
        64 * 1024,
    ));
    Ok((
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        body,
    )
        .into_response())
}

/// Every regular file under `dir`, sorted by name. Symbolic links are not followed.
pub fn list(dir: &Path) -> Vec<Artifact> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file()
                && let Ok(relative) = path.strip_prefix(dir)
            {
                found.push(Artifact {
                    name: relative.to_string_lossy().into_owned(),
                    bytes: entry.metadata().map_or(0, |m| m.len()),
                });
            }
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// The file `name` names inside `dir`, opened: refused when it is absolute or climbs with
/// `..` (400); not found when it resolves (through a symlink) outside the directory or is not
/// a regular file (a FIFO the agent made there would block a reader for ever).
async fn open(dir: &Path, name: &str) -> Result<(std::fs::File, u64), ApiError> {
    let relative = Path::new(name);
    let plain = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if name.is_empty() || !plain {
        return Err(ApiError::bad_request(format!(
            "artifact name {name:?} must be a plain path inside the run directory"
        )));
    }
    let (dir, relative) = (dir.to_owned(), relative.to_owned());
    let opening = tokio::task::spawn_blocking(move || confined::open(&dir, &relative));
    match tokio::time::timeout(confined::READ_TIMEOUT, opening).await {
        Ok(Ok(Ok(file))) => Ok(file),
        Ok(Ok(Err(refused))) => Err(ApiError::not_found(format!(
            "no artifact {name:?}: {refused}"
        ))),
        Ok(Err(error)) => Err(ApiError::not_found(format!(
            "cannot open artifact {name:?}: {error}"
        ))),
        Err(_) => Err(ApiError::not_found(format!(
            "opening artifact {name:?} took over {:?}",
            confined::READ_TIMEOUT
        ))),
    }
}
