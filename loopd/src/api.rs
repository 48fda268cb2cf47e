//! The HTTP API (`contract.md` §3): routes, request and response bodies, handlers. Every
//! handler answers from the runtime's projections and log; errors are JSON everywhere.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, middleware};
use loop_core::config::Layer;
use loop_core::projection::{RunView, StepView};
use loop_core::{EventRecord, RunId, RunStatus, Seq, StepId};
use loop_runtime::{RunRequest, Runtime};
use loop_store::RunQuery;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use utoipa_axum::routes;

use crate::artifacts::{self, Artifact};
use crate::error::{ApiError, ErrorBody};
use crate::guard::{self, Guard};

use crate::metrics::Metrics;
use crate::openapi::Routes;
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

/// The API as an axum router, guarded (`crate::guard`) and limited (1 MiB bodies). Every route
/// is added with `routes!`, from its handler's `#[utoipa::path]`: that is what puts it in the
/// OpenAPI document (`crate::openapi`), and there is no other way in.
pub fn app(state: AppState, guard: Guard) -> Router {
    Routes::new()
        .routes(routes!(health))
        .routes(routes!(create_run, list_runs))
        .routes(routes!(get_run))
        .routes(routes!(steps))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(cancel))
        .routes(routes!(retry))
        .routes(routes!(run_events))
        .routes(routes!(output))
        .routes(routes!(list_artifacts))
        .routes(routes!(artifact))
        .routes(routes!(review::diff))
        .routes(routes!(review::merge))
        .routes(routes!(review::scrap))
        .routes(routes!(review::create_pr))
        .routes(routes!(review::worktrees))
        .routes(routes!(review::remove_worktree))
        .routes(routes!(review::gc))
        .routes(routes!(
            crate::insight::start_postmortem,
            crate::insight::postmortem
        ))
        .routes(routes!(crate::insight::stats))
        .routes(routes!(all_events))
        .routes(routes!(metrics))
        .finish()
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

/// Decodes a request body; errors name the field at fault. An empty body is an empty object:
/// the fields that are optional take their defaults.
pub fn decode_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
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

/// The run request a `POST /runs` body describes (what the handler submits).
pub fn run_request_from_body(bytes: &[u8]) -> Result<RunRequest, ApiError> {
    decode_body::<CreateRun>(bytes)?.into_request()
}

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
        decode_body(&bytes).map(Body)
    }
}

/// Path parameters whose rejection (a segment that is not UTF-8) is a JSON error like any other.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(params)| PathParams(params))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// A query string whose rejection (a value of the wrong type) is a JSON error naming the field.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(query)| QueryParams(query))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

pub(crate) fn run_id(text: &str) -> Result<RunId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::not_found(format!("no run {text:?} (not a run id)")))
}

/// `GET /health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Health {
    /// `ok`, or `degraded` while the event log refuses writes.
    status: &'static str,
    /// The daemon's version.
    version: &'static str,
    /// Why the log refuses writes, while it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    store: Option<String>,
}

/// Whether the daemon is up and its log takes writes; never needs the token.
#[utoipa::path(
    get,
    path = "/health",
    tag = "meta",
    responses(
        (status = 200, description = "Up, and the log takes writes.", body = Health),
        (status = 503, description = "Up, but the log refuses writes (a full disk, say): runs \
                                      wait and new runs are refused until it takes them.",
            body = Health),
    ),
)]
async fn health(State(state): State<AppState>) -> Response {
    let version = env!("CARGO_PKG_VERSION");
    match state.runtime.store_trouble() {
        None => Json(Health {
            status: "ok",
            version,
            store: None,
        })
        .into_response(),
        Some(trouble) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "degraded",
                version,
                store: Some(format!(
                    "the event log refuses writes since {}: {}",
                    loop_core::time::rfc3339_ms(trouble.since_ms),
                    trouble.reason
                )),
            }),
        )
            .into_response(),
    }
}

/// `{"run": Run}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunEnvelope {
    run: RunView,
}

/// A page of runs, newest first; `next` is the `before` of the next page, `null` on the last.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunsPage {
    runs: Vec<RunView>,
    #[schema(required = true)]
    next: Option<RunId>,
}

/// `{"steps": [Step]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StepsEnvelope {
    steps: Vec<StepView>,
}

/// `{"events": [Event]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventsEnvelope {
    events: Vec<EventRecord>,
}

/// `{"artifacts": [Artifact]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ArtifactsEnvelope {
    artifacts: Vec<Artifact>,
}

/// `POST /runs`: the request, and any run flag as a snake_case field.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateRun {
    /// The spec, relative to `workspace_root`.
    spec_path: String,
    plan_path: Option<String>,
    /// The repository the run works on.
    workspace_root: String,
    name: Option<String>,
    /// How the run is named: `haiku`, `spec_slug` or `explicit`.
    name_source: Option<String>,
    /// Configuration keys (`.loop/config` names) and their values: strings, numbers or booleans.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, ConfigValue>)]
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

/// The schema of a configuration value in `POST /runs`: a string, a number or a boolean (the
/// handler reads `serde_json::Value`s, to name the key of any other).
struct ConfigValue;

impl utoipa::PartialSchema for ConfigValue {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(String::schema())
            .item(f64::schema())
            .item(bool::schema())
            .into()
    }
}

impl utoipa::ToSchema for ConfigValue {}

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

/// Starts a run (it is queued when the daemon is at its limits).
#[utoipa::path(
    post,
    path = "/runs",
    tag = "runs",
    request_body = CreateRun,
    responses(
        (status = 201, description = "The run, created.", body = RunEnvelope),
        (status = 400, description = "A bad field, named.", body = ErrorBody),
        (status = 404, description = "The spec or the workspace is missing.", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB.", body = ErrorBody),
        (status = 503, description = "The event log refuses writes (`store_unavailable`).",
            body = ErrorBody),
    ),
)]
async fn create_run(
    State(state): State<AppState>,
    Body(body): Body<CreateRun>,
) -> Result<(StatusCode, Json<RunEnvelope>), ApiError> {
    let run = state.runtime.submit(body.into_request()?).await?;
    Ok((StatusCode::CREATED, Json(RunEnvelope { run })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
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
async fn list_runs(
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
async fn get_run(
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
async fn steps(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<StepsEnvelope>, ApiError> {
    let id = run_id(&id)?;
    state.runtime.get(id).await?;
    let steps = state.runtime.steps(id).await?;
    Ok(Json(StepsEnvelope { steps }))
}

/// Pauses a run: its agent is stopped at once.
#[utoipa::path(
    post,
    path = "/runs/{id}/pause",
    tag = "runs",
    params(("id" = RunId, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The run, paused.", body = RunEnvelope),
        (status = 404, description = "No such run.", body = ErrorBody),
        (status = 409, description = "The run cannot be paused where it stands.", body = ErrorBody),
    ),
)]
async fn pause(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<RunEnvelope>, ApiError> {
    let run = state.runtime.pause(run_id(&id)?).await?;
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
async fn resume(
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
async fn cancel(
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
async fn retry(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<RunEnvelope>, ApiError> {
    let run = state.runtime.retry(run_id(&id)?).await?;
    Ok(Json(RunEnvelope { run }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Resume after this event seq (the `Last-Event-ID` header wins over it).
    #[param(value_type = Option<u64>)]
    after: Option<String>,
    /// `json` for one JSON answer of the events so far instead of a stream.
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

/// A run's events: a stream that ends after the run's terminal event, or with `?format=json`
/// the events so far.
#[utoipa::path(
    get,
    path = "/runs/{id}/events",
    tag = "events",
    params(
        ("id" = RunId, Path, description = "The run's id."),
        EventsQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event seq."),
    ),
    responses(
        (status = 200, description = "Server-sent events (`id: <seq>`, `event: <TYPE>`, \
                                      `data: <Event>`), or with `?format=json` the events.",
            content(
                (EventsEnvelope = "application/json"),
                (String = "text/event-stream"),
            )),
        (status = 400, description = "A bad resume position.", body = ErrorBody),
        (status = 404, description = "No such run.", body = ErrorBody),
    ),
)]
async fn run_events(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    QueryParams(query): QueryParams<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = run_id(&id)?;
    let view = state.runtime.get(id).await?;
    let after = resume_after(&headers, query.after.as_deref())?;
    if query.format.as_deref() == Some("json") {
        let events = state
            .runtime
            .events(id)
            .await?
            .into_iter()
            .filter(|record| record.seq > after)
            .collect();
        return Ok(Json(EventsEnvelope { events }).into_response());
    }
    // A finished run read past its end has nothing more to send.
    let events = state.runtime.subscribe(Some(id), after);
    if view.status.is_terminal() && after >= view.last_seq {
        return Ok(sse::closed().into_response());
    }
    Ok(sse::events(events, true, &state).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AllEventsQuery {
    /// Resume after this event seq (the `Last-Event-ID` header wins over it).
    #[param(value_type = Option<u64>)]
    after: Option<String>,
}

/// Every run's events, as a stream that does not end.
#[utoipa::path(
    get,
    path = "/events",
    tag = "events",
    params(
        AllEventsQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event seq."),
    ),
    responses(
        (status = 200, description = "Server-sent events: `id: <seq>`, `event: <TYPE>`, \
                                      `data: <Event>`.",
            content_type = "text/event-stream", body = String),
        (status = 400, description = "A bad resume position.", body = ErrorBody),
    ),
)]
async fn all_events(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<AllEventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = resume_after(&headers, query.after.as_deref())?;
    let events = state.runtime.subscribe(None, after);
    Ok(sse::events(events, false, &state).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct OutputQuery {
    /// The step: the current one, else the last, unless given.
    #[param(value_type = Option<StepId>)]
    step: Option<String>,
    /// Start at this byte of the step's output.
    offset: Option<u64>,
}

/// A step's raw output, live while the step runs.
#[utoipa::path(
    get,
    path = "/runs/{id}/output",
    tag = "events",
    params(
        ("id" = RunId, Path, description = "The run's id."),
        OutputQuery,
        ("Last-Event-ID" = Option<String>, Header,
            description = "`<step_id>:<byte offset>`: resume there (wins over the query)."),
    ),
    responses(
        (status = 200, description = "Server-sent events: `event: output`, \
                                      `id: <step_id>:<byte offset>`, `data: <OutputChunk>`.",
            content_type = "text/event-stream", body = String),
        (status = 400, description = "A bad step or offset.", body = ErrorBody),
        (status = 404, description = "No such run, or no step yet.", body = ErrorBody),
    ),
)]
async fn output(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    QueryParams(query): QueryParams<OutputQuery>,
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
async fn list_artifacts(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<ArtifactsEnvelope>, ApiError> {
    let dir = state.runtime.run_dir(run_id(&id)?).await?;
    Ok(Json(ArtifactsEnvelope {
        artifacts: artifacts::list(&dir),
    }))
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
async fn artifact(
    State(state): State<AppState>,
    PathParams((id, name)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let dir = state.runtime.run_dir(run_id(&id)?).await?;
    let path = artifacts::resolve(&dir, &name)?;
    let unreadable = |error: std::io::Error| {
        ApiError::not_found(format!("cannot read artifact {name:?}: {error}"))
    };
    let file = tokio::fs::File::open(&path).await.map_err(unreadable)?;
    let length = file.metadata().await.map_err(unreadable)?.len();
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

/// The daemon's figures.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    responses((status = 200, description = "Prometheus text format.", body = String)),
)]
async fn metrics(State(state): State<AppState>) -> Response {
    let text = state
        .metrics
        .render(state.runtime.append_latency().snapshot());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
