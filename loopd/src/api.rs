//! The HTTP API (`contract.md` §3): routes, request and response bodies, handlers. Every
//! handler answers from the runtime's projections and log; errors are JSON everywhere.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use loop_core::config::Layer;
use loop_core::{RunId, RunStatus, Seq, StepId};
use loop_runtime::{RunRequest, Runtime};
use loop_store::RunQuery;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::artifacts;
use crate::error::ApiError;
use crate::guard::{self, Guard};
use crate::metrics::Metrics;
use crate::review;
use crate::sse;

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub runtime: Runtime,
    pub metrics: Arc<Metrics>,
    /// Cancelled when the daemon stops: open streams end so the server can drain.
    pub shutdown: CancellationToken,
}

impl AppState {
    pub fn new(runtime: Runtime) -> AppState {
        AppState {
            runtime,
            metrics: Arc::default(),
            shutdown: CancellationToken::new(),
        }
    }
}

/// The API as an axum router, guarded (`Host`, token) and limited (1 MiB bodies).
pub fn app(state: AppState, allow_remote: bool, token: Option<String>) -> Router {
    let guard = Guard {
        allow_remote,
        token: token.map(Arc::from),
    };
    Router::new()
        .route("/health", get(health))
        .route("/runs", post(create_run).get(list_runs))
        .route("/runs/{id}", get(get_run))
        .route("/runs/{id}/steps", get(steps))
        .route("/runs/{id}/pause", post(pause))
        .route("/runs/{id}/resume", post(resume))
        .route("/runs/{id}/cancel", post(cancel))
        .route("/runs/{id}/retry", post(retry))
        .route("/runs/{id}/events", get(run_events))
        .route("/runs/{id}/output", get(output))
        .route("/runs/{id}/artifacts", get(list_artifacts))
        .route("/runs/{id}/artifacts/{*name}", get(artifact))
        .route("/runs/{id}/diff", get(review::diff))
        .route("/runs/{id}/merge", post(review::merge))
        .route("/runs/{id}/scrap", post(review::scrap))
        .route("/runs/{id}/create-pr", post(review::create_pr))
        .route("/worktrees", get(review::worktrees))
        .route("/worktrees/remove", post(review::remove_worktree))
        .route("/gc", post(review::gc))
        .route("/events", get(all_events))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(guard, guard::check))
        .with_state(state)
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route {} {}",
        request.method(),
        request.uri().path()
    ))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

/// A JSON body whose errors name the field at fault.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        format!("request bodies are limited to {BODY_LIMIT} bytes"),
                    )
                } else {
                    ApiError::bad_request(format!("cannot read the body: {rejection}"))
                }
            })?;
        // An empty body is an empty object: the fields that are optional take their defaults.
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(&mut deserializer)
            .map(Body)
            .map_err(|error| {
                let path = error.path().to_string();
                let inner = error.into_inner();
                match inner.classify() {
                    serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                        ApiError::bad_request(format!("invalid JSON body: {inner}"))
                    }
                    _ if path == "." => ApiError::bad_request(format!("invalid body: {inner}")),
                    _ => ApiError::bad_request(format!("field `{path}`: {inner}")),
                }
            })
    }
}

pub(crate) fn run_id(text: &str) -> Result<RunId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::not_found(format!("no run {text:?} (not a run id)")))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// `POST /runs`: the request, and any run flag as a snake_case field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRun {
    spec_path: String,
    plan_path: Option<String>,
    workspace_root: String,
    name: Option<String>,
    name_source: Option<String>,
    #[serde(default)]
    config: BTreeMap<String, Value>,
    model: Option<String>,
    iterations: Option<u32>,
    verify_cmds: Option<Vec<String>>,
    agent: Option<String>,
    base_branch: Option<String>,
    run_branch_prefix: Option<String>,
    merge_target: Option<String>,
    merge_strategy: Option<String>,
    worktree_path_template: Option<String>,
    worktree_provider: Option<String>,
    worktrunk_bin: Option<String>,
    worktrunk_config: Option<String>,
    worktrunk_copy_ignored: Option<bool>,
    no_worktree: Option<bool>,
}

impl CreateRun {
    fn into_request(self) -> Result<RunRequest, ApiError> {
        let mut config = Layer::new();
        for (key, value) in self.config {
            let text = match value {
                Value::String(text) => text,
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "field `config.{key}`: expected a string, number or boolean, got {other}"
                    )));
                }
            };
            config.insert(key, text);
        }
        let flags = [
            ("run_naming_mode", self.name_source),
            ("model", self.model),
            ("iterations", self.iterations.map(|n| n.to_string())),
            ("verify_cmds", self.verify_cmds.map(|cmds| cmds.join("|"))),
            ("agent", self.agent),
            ("base_branch", self.base_branch),
            ("run_branch_prefix", self.run_branch_prefix),
            ("merge_target_branch", self.merge_target),
            ("merge_strategy", self.merge_strategy),
            ("worktree_path_template", self.worktree_path_template),
            ("worktree_provider", self.worktree_provider),
            ("worktrunk_bin", self.worktrunk_bin),
            ("worktrunk_config_path", self.worktrunk_config),
            (
                "worktrunk_copy_ignored",
                self.worktrunk_copy_ignored.map(|b| b.to_string()),
            ),
        ];
        for (key, value) in flags {
            if let Some(value) = value {
                config.insert(key.to_owned(), value);
            }
        }
        if self.no_worktree == Some(true) {
            config.insert("worktree_provider".to_owned(), "none".to_owned());
        }
        Ok(RunRequest {
            workspace_root: PathBuf::from(self.workspace_root),
            spec_path: self.spec_path,
            plan_path: self.plan_path,
            name: self.name,
            config,
            config_file: None,
        })
    }
}

async fn create_run(
    State(state): State<AppState>,
    Body(body): Body<CreateRun>,
) -> Result<Response, ApiError> {
    let run = state.runtime.submit(body.into_request()?).await?;
    Ok((StatusCode::CREATED, Json(json!({ "run": run }))).into_response())
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    workspace_root: Option<String>,
    limit: Option<usize>,
    before: Option<String>,
}

/// The most runs one page holds.
const MAX_PAGE: usize = 1000;

async fn list_runs(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
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
    let next = (runs.len() == limit).then(|| runs.last().map(|run| run.id.to_string()));
    Ok(Json(json!({ "runs": runs, "next": next.flatten() })))
}

async fn get_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run = state.runtime.get(run_id(&id)?).await?;
    Ok(Json(json!({ "run": run })))
}

async fn steps(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = run_id(&id)?;
    state.runtime.get(id).await?;
    let steps = state.runtime.steps(id).await?;
    Ok(Json(json!({ "steps": steps })))
}

async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run = state.runtime.pause(run_id(&id)?).await?;
    Ok(Json(json!({ "run": run })))
}

async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run = state.runtime.resume(run_id(&id)?).await?;
    Ok(Json(json!({ "run": run })))
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run = state.runtime.cancel(run_id(&id)?).await?;
    Ok(Json(json!({ "run": run })))
}

async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run = state.runtime.retry(run_id(&id)?).await?;
    Ok(Json(json!({ "run": run })))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    after: Option<String>,
    format: Option<String>,
}

/// Where a stream resumes: `Last-Event-ID`, else `?after=`, else the start.
fn resume_after(headers: &HeaderMap, after: Option<&str>) -> Result<Seq, ApiError> {
    let given = headers
        .get("last-event-id")
        .and_then(|h| h.to_str().ok())
        .or(after);
    match given {
        None => Ok(Seq(0)),
        Some(text) => text.trim().parse::<u64>().map(Seq).map_err(|_| {
            ApiError::bad_request(format!("resume position {text:?} is not an event seq"))
        }),
    }
}

async fn run_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = run_id(&id)?;
    let view = state.runtime.get(id).await?;
    let after = resume_after(&headers, query.after.as_deref())?;
    if query.format.as_deref() == Some("json") {
        let events: Vec<Value> = state
            .runtime
            .events(id)
            .await?
            .into_iter()
            .filter(|record| record.seq > after)
            .map(|record| serde_json::to_value(&record).unwrap_or(Value::Null))
            .collect();
        return Ok(Json(json!({ "events": events })).into_response());
    }
    // A finished run read past its end has nothing more to send.
    let events = state.runtime.subscribe(Some(id), after);
    if view.status.is_terminal() && after >= view.last_seq {
        return Ok(sse::closed().into_response());
    }
    Ok(sse::events(events, true, &state).into_response())
}

async fn all_events(
    State(state): State<AppState>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = resume_after(&headers, query.after.as_deref())?;
    let events = state.runtime.subscribe(None, after);
    Ok(sse::events(events, false, &state).into_response())
}

#[derive(Debug, Deserialize)]
struct OutputQuery {
    step: Option<String>,
    offset: Option<u64>,
}

async fn output(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<OutputQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = run_id(&id)?;
    let view = state.runtime.get(id).await?;
    // `Last-Event-ID: <step>:<offset>` wins over the query.
    let resume = headers
        .get("last-event-id")
        .and_then(|h| h.to_str().ok())
        .and_then(|text| text.split_once(':'))
        .map(|(step, offset)| (step.to_owned(), offset.parse::<u64>().ok()));
    let (step_text, offset) = match resume {
        Some((step, offset)) => (Some(step), offset),
        None => (query.step, query.offset),
    };
    let step: StepId = match step_text {
        Some(text) => text
            .parse()
            .map_err(|_| ApiError::bad_request(format!("`step`: {text:?} is not a step id")))?,
        None => match view.current_step {
            Some(current) => current.id,
            None => state
                .runtime
                .steps(id)
                .await?
                .last()
                .map(|step| step.id)
                .ok_or_else(|| ApiError::not_found(format!("run {id} has no step yet")))?,
        },
    };
    let stream = state
        .runtime
        .step_output(id, step, offset.unwrap_or(0))
        .await?;
    Ok(sse::output(stream, &state).into_response())
}

async fn list_artifacts(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let dir = state.runtime.run_dir(run_id(&id)?).await?;
    Ok(Json(json!({ "artifacts": artifacts::list(&dir) })))
}

async fn artifact(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let dir = state.runtime.run_dir(run_id(&id)?).await?;
    let path = artifacts::resolve(&dir, &name)?;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|error| ApiError::not_found(format!("cannot read artifact {name:?}: {error}")))?;
    let kind = if name.ends_with(".json") || name.ends_with(".jsonl") {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    Ok(([(header::CONTENT_TYPE, kind)], bytes).into_response())
}

async fn metrics(State(state): State<AppState>) -> Response {
    let text = state
        .metrics
        .render(state.runtime.append_latency().snapshot());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
