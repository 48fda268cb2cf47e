//! Asking another node of the cluster for what only its machine has: a step's output or a
//! run's files, when the run works in that node's data dir (a run by URL). The answer is
//! passed through as it arrives, status and content type included.

use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// `GET <owner><path>` with the cluster's token; `None` when the node does not answer (it
/// just died, say): the caller then serves what this node has.
pub async fn get(state: &AppState, owner: &str, path: &str) -> Option<Response> {
    let url = format!("{}{path}", owner.trim_end_matches('/'));
    let mut request = reqwest::Client::new().get(&url);
    if let Some(token) = &state.token {
        request = request.bearer_auth(token);
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::info!(%owner, %error, "the node that has the run's files did not answer: serving from here");
            return None;
        }
    };
    let status = answer.status();
    let content_type = answer.headers().get(reqwest::header::CONTENT_TYPE).cloned();
    let mut response = axum::body::Body::from_stream(answer.bytes_stream()).into_response();
    *response.status_mut() = axum::http::StatusCode::from_u16(status.as_u16()).unwrap_or_default();
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(axum::http::header::CONTENT_TYPE, content_type);
    }
    Some(response)
}
