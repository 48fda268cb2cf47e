//! The event streams (a run's, every run's) and a step's output, as server-sent events; where a
//! client resumes is read by `loop_core::resume`, the one reader of those positions.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use loop_api::runs::EventsEnvelope;
use loop_core::resume::{parse_event_resume, parse_output_resume};
use loop_core::{RunId, Seq, StepId};
use serde::Deserialize;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{PathParams, QueryParams, run_id};
use crate::sse;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
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
        Some(text) => {
            parse_event_resume(text).map_err(|error| ApiError::bad_request(error.to_string()))
        }
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
pub async fn run_events(
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
    // A finished run read past its end has nothing more to send, once its files are written.
    let events = state.runtime.subscribe(Some(id), after);
    if view.status.is_terminal() && after >= view.last_seq {
        let _ = state.runtime.wait(id).await;
        return Ok(sse::closed().into_response());
    }
    Ok(sse::events(events, Some(id), &state).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AllEventsQuery {
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
pub async fn all_events(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<AllEventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = resume_after(&headers, query.after.as_deref())?;
    let events = state.runtime.subscribe(None, after);
    Ok(sse::events(events, None, &state).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutputQuery {
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
pub async fn output(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    QueryParams(query): QueryParams<OutputQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = run_id(&id)?;
    let view = state.runtime.get(id).await?;
    // `Last-Event-ID: <step>:<offset>` wins over the query.
    let resume = headers.get("last-event-id").and_then(|h| h.to_str().ok());
    let (step, offset) = match resume {
        Some(text) => {
            let (step, offset) = parse_output_resume(text)
                .map_err(|error| ApiError::bad_request(error.to_string()))?;
            (Some(step), offset)
        }
        None => {
            let step = match query.step {
                Some(text) => Some(text.parse::<StepId>().map_err(|_| {
                    ApiError::bad_request(format!("`step`: {text:?} is not a step id"))
                })?),
                None => None,
            };
            (step, query.offset.unwrap_or(0))
        }
    };
    let step = match step.or(view.current_step.map(|current| current.id)) {
        Some(step) => step,
        None => state
            .runtime
            .steps(id)
            .await?
            .last()
            .map(|step| step.id)
            .ok_or_else(|| ApiError::not_found(format!("run {id} has no step yet")))?,
    };
    // A step another node runs, whose output is on that node's machine: its node answers.
    // If it does not answer (it just died, say), this node serves what it has: the step ends
    // for the reader once the node taking the run over records it, and the next step is here.
    if let Some(owner) = state.runtime.output_elsewhere(id, step).await?
        && let Some(response) = crate::proxy::get(
            &state,
            &owner,
            crate::proxy::Upstream::Output {
                run: id,
                step,
                offset,
            },
        )
        .await?
    {
        return Ok(response);
    }
    let stream = state.runtime.step_output(id, step, offset).await?;
    Ok(sse::output(stream, &state).into_response())
}
