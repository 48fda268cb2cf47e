//! The API as one router: every route added from its handler's annotation (see
//! [`crate::openapi::Routes`]), the dashboard's pages beside it ([`crate::dashboard`]), JSON
//! answers for unknown routes and methods, the body limit, and the guard in front of it all.

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::{Router, middleware};
use utoipa_axum::routes;

use crate::dashboard;
use crate::error::ApiError;
use crate::extract::BODY_LIMIT;
use crate::guard::{self, Guard};
use crate::openapi::Routes;
use crate::routes::{artifacts, insight, meta, plan, review, runs, streams, workspace};
use crate::state::AppState;

/// The API and the dashboard as an axum router, guarded ([`crate::guard`]) and limited (1 MiB bodies).
pub fn app(state: AppState, guard: Guard) -> Router {
    Routes::new()
        .routes(routes!(meta::health))
        .routes(routes!(runs::create_run, runs::list_runs))
        .routes(routes!(runs::lookup_run))
        .routes(routes!(workspace::specs))
        .routes(routes!(runs::get_run))
        .routes(routes!(runs::steps))
        .routes(routes!(plan::plan))
        .routes(routes!(runs::pause))
        .routes(routes!(runs::resume))
        .routes(routes!(runs::cancel))
        .routes(routes!(runs::retry))
        .routes(routes!(streams::run_events))
        .routes(routes!(streams::output))
        .routes(routes!(streams::all_events))
        .routes(routes!(artifacts::list_artifacts))
        .routes(routes!(artifacts::artifact))
        .routes(routes!(review::diff))
        .routes(routes!(review::comment, review::comments))
        .routes(routes!(review::request_changes))
        .routes(routes!(review::merge))
        .routes(routes!(review::scrap))
        .routes(routes!(review::create_pr))
        .routes(routes!(review::worktrees))
        .routes(routes!(review::remove_worktree))
        .routes(routes!(review::gc))
        .routes(routes!(insight::start_postmortem, insight::postmortem))
        .routes(routes!(insight::stats))
        .routes(routes!(insight::experiment))
        .routes(routes!(meta::metrics))
        .routes(routes!(meta::nodes))
        .routes(routes!(meta::accounts))
        .finish()
        .merge(dashboard::router(
            std::sync::Arc::clone(&guard.token),
            std::sync::Arc::clone(&guard.sessions),
        ))
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
