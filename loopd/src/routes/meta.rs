//! The daemon itself: its health and its figures.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use loop_api::meta::{
    AccountInfo, AccountWindow, Accounts, Binding, Forecast, Health, ModelLimit, NodeInfo, Nodes,
};
use loop_core::account::Binding as CoreBinding;
use loop_core::time::rfc3339_ms;

use crate::error::ApiError;
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
                rfc3339_ms(trouble.since_ms),
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

/// The daemons sharing this one's event log: their heartbeats, runs and capacity.
#[utoipa::path(
    get,
    path = "/nodes",
    tag = "meta",
    responses((status = 200, description = "The nodes, the most recently heard first.",
        body = Nodes)),
)]
pub async fn nodes(State(state): State<AppState>) -> Result<Json<Nodes>, ApiError> {
    let running = state
        .runtime
        .list(loop_store::RunQuery {
            status: Some(loop_core::RunStatus::Running),
            ..Default::default()
        })
        .await?;
    let runs_of = |id: &str| -> Vec<loop_core::RunId> {
        running
            .iter()
            .filter(|run| run.node.as_deref() == Some(id))
            .map(|run| run.id)
            .collect()
    };
    let answer = match state.runtime.node() {
        Some(me) => {
            let lease_ms = me.lease.as_millis() as u64;
            let nodes = state.runtime.nodes().await?;
            Nodes {
                cluster: true,
                lease_ms,
                nodes: nodes
                    .into_iter()
                    .map(|seen| NodeInfo {
                        run_ids: runs_of(&seen.beat.node_id),
                        this: seen.beat.node_id == me.id,
                        // A row that does not prove the cluster's token is no member, however
                        // fresh its heartbeat.
                        state: if !me.trusts(&seen) {
                            "unproven"
                        } else if seen.left {
                            "left"
                        } else if seen.holds_lease() {
                            "alive"
                        } else {
                            "silent"
                        }
                        .to_owned(),
                        id: seen.beat.node_id,
                        name: seen.beat.name,
                        address: seen.beat.address,
                        capacity: seen.beat.capacity,
                        runs: seen.beat.runs,
                        started_at: rfc3339_ms(seen.started_ms),
                        heartbeat_at: rfc3339_ms(seen.heartbeat_ms),
                        age_ms: seen.age_ms,
                        lease_ms: seen.beat.lease_ms,
                    })
                    .collect(),
            }
        }
        // One machine's log: this daemon is the only node, and it is answering.
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_millis() as i64);
            Nodes {
                cluster: false,
                lease_ms: 0,
                nodes: vec![NodeInfo {
                    id: state.node.id.clone(),
                    name: state.node.name.clone(),
                    address: state.node.address.clone(),
                    capacity: state.runtime.capacity() as u32,
                    runs: state.runtime.running_count() as u32,
                    run_ids: running.iter().map(|run| run.id).collect(),
                    started_at: rfc3339_ms(state.started_ms),
                    heartbeat_at: rfc3339_ms(now),
                    age_ms: 0,
                    lease_ms: 0,
                    state: "alive".to_owned(),
                    this: true,
                }],
            }
        }
    };
    Ok(Json(answer))
}

/// The agent accounts of the runs in the log: their runs, the usage limit that holds them, and
/// what their calls cost.
#[utoipa::path(
    get,
    path = "/accounts",
    tag = "meta",
    responses((status = 200, description = "Every account, by name.", body = Accounts)),
)]
pub async fn accounts(State(state): State<AppState>) -> Json<Accounts> {
    let accounts = state
        .runtime
        .accounts()
        .into_iter()
        .map(|summary| AccountInfo {
            window: summary.state.window.as_ref().and_then(|w| w.window.clone()),
            window_status: summary.state.window.as_ref().map(|w| w.status.clone()),
            window_utilization: summary.state.window.as_ref().and_then(|w| w.utilization),
            window_resets_at_ms: summary.state.window.as_ref().and_then(|w| w.resets_at_ms),
            windows: summary
                .state
                .windows
                .iter()
                .map(|(name, window)| AccountWindow {
                    window: name.clone(),
                    status: window.seen.status.clone(),
                    utilization: window.seen.utilization,
                    resets_at_ms: window.seen.resets_at_ms,
                    seen_ms: window.seen_ms,
                })
                .collect(),
            model_limits: summary
                .state
                .model_limits
                .iter()
                .map(|(family, limit)| ModelLimit {
                    family: family.clone(),
                    until_ms: limit.until_ms,
                    window: limit.window.clone(),
                    reason: limit.reason.clone(),
                })
                .collect(),
            concurrency: summary.concurrency,
            calls_in_flight: summary.calls_in_flight,
            turn_queue: summary.turn_queue,
            limited_until: summary.state.limited_until_ms.map(rfc3339_ms),
            limited_until_ms: summary.state.limited_until_ms,
            limited_by: summary.state.limited_by,
            limit_reason: summary.state.limit_reason,
            probe: summary.probe,
            limits_met: summary.state.limits_met,
            calls: summary.state.calls,
            spent_day_usd: summary.state.spent_day_usd,
            spent_month_usd: summary.state.spent_month_usd,
            name: summary.account.clone(),
            declared_agent: summary.declared_agent,
            account: summary.account,
            runs: summary.runs,
        })
        .collect();
    let forecasts = state
        .runtime
        .forecasts()
        .into_iter()
        .map(|forecast| Forecast {
            run_id: forecast.run_id,
            account: forecast.account,
            tasks_left: forecast.tasks_left,
            iteration_ms: forecast.iteration_ms,
            iteration_cost_usd: forecast.iteration_cost_usd,
            finish: forecast.finish_ms.map(rfc3339_ms),
            finish_ms: forecast.finish_ms,
            binding: forecast.binding.map(|binding| match binding {
                CoreBinding::Window {
                    account,
                    window,
                    resets_at_ms,
                } => Binding::Window {
                    account,
                    window,
                    resets_at_ms,
                },
                CoreBinding::MaxCost {
                    expected_usd,
                    max_usd,
                } => Binding::MaxCost {
                    expected_usd,
                    max_usd,
                },
                CoreBinding::Limit { account, until_ms } => Binding::Limit { account, until_ms },
            }),
        })
        .collect();
    Json(Accounts {
        accounts,
        forecasts,
    })
}
