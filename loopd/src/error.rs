//! API errors: a status code and `{"error": "<for people>", "code": "<snake_case>"}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use loop_runtime::RuntimeError;
use serde::Serialize;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// What went wrong, for programs: a snake_case word such as `not_found`,
    /// `illegal_transition` or `bad_request`.
    pub code: &'static str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            code: self.code,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<RuntimeError> for ApiError {
    fn from(error: RuntimeError) -> ApiError {
        let message = error.to_string();
        match error {
            RuntimeError::UnknownRun(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "run_not_found", message)
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
