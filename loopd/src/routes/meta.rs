//! The daemon itself: its health and its figures.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use loop_api::meta::Health;

use crate::state::AppState;

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
pub async fn health(State(state): State<AppState>) -> Response {
    let version = env!("CARGO_PKG_VERSION").to_owned();
    match state.runtime.store_trouble() {
        None => Json(Health {
            status: "ok".to_owned(),
            version,
            store: None,
        })
        .into_response(),
        Some(trouble) => {
            let store = format!(
                "the event log refuses writes since {}: {}",
                loop_core::time::rfc3339_ms(trouble.since_ms),
                trouble.reason
            );
            let health = Health {
                status: "degraded".to_owned(),
                version,
                store: Some(store),
            };
            (StatusCode::SERVICE_UNAVAILABLE, Json(health)).into_response()
        }
    }
}

/// The daemon's figures.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    responses((status = 200, description = "Prometheus text format.", body = String)),
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let text = state
        .metrics
        .render(state.runtime.append_latency().snapshot());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
