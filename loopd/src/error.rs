//! API errors: a status code and `{"error": "<for people>", "code": "<snake_case>"}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use loop_runtime::RuntimeError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The runs an ambiguous reference could mean, listed in the body as `runs`.
    pub runs: Option<Vec<loop_core::projection::RunView>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            runs: None,
        }
    }

    fn with_runs(mut self, runs: Vec<loop_core::projection::RunView>) -> ApiError {
        self.runs = Some(runs);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

pub use loop_api::meta::ErrorBody;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self.runs {
            Some(runs) => {
                let body = loop_api::runs::Candidates {
                    error: self.message,
                    code: self.code.to_owned(),
                    runs,
                };
                (self.status, Json(body)).into_response()
            }
            None => {
                let body = ErrorBody {
                    error: self.message,
                    code: self.code.to_owned(),
                };
                (self.status, Json(body)).into_response()
            }
        }
    }
}

impl From<RuntimeError> for ApiError {
    fn from(error: RuntimeError) -> ApiError {
        let message = error.to_string();
        match error {
            RuntimeError::UnknownRun(_) | RuntimeError::NoMatch { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "run_not_found", message)
            }
            RuntimeError::Ambiguous { runs, .. } => {
                ApiError::new(StatusCode::CONFLICT, "ambiguous", message).with_runs(runs)
            }
            RuntimeError::Domain(_) => {
                ApiError::new(StatusCode::CONFLICT, "illegal_transition", message)
            }
            RuntimeError::Config(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_config", message)
            }
            RuntimeError::PlanComplete { .. } => {
                ApiError::new(StatusCode::CONFLICT, "plan_complete", message)
            }
            RuntimeError::Missing { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            RuntimeError::InvalidRequest { .. } => ApiError::bad_request(message),
            RuntimeError::MergeFailed { .. } => {
                ApiError::new(StatusCode::CONFLICT, "merge_failed", message)
            }
            RuntimeError::Busy { .. } => ApiError::new(StatusCode::CONFLICT, "busy", message),
            RuntimeError::Store(ref store) if store.is_unavailable() => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("the event log refuses writes for now: {message}"),
            ),
            RuntimeError::Shutdown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message)
            }
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message),
        }
    }
}
