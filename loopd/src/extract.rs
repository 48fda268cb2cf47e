//! Extractors whose refusals are JSON errors like any other: bodies (naming the field at
//! fault), path segments, query strings; and the run id of a path.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use loop_core::RunId;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

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

/// The body's bytes, a body over the limit refused as 413.
pub async fn body_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
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
        })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(request, state).await?;
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

/// The run a path names by id.
pub fn run_id(text: &str) -> Result<RunId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::not_found(format!("no run {text:?} (not a run id)")))
}
