//! `loopctl accounts`: the agent accounts of the runs, from the daemon at --addr.

use std::process::ExitCode;

use loop_client::blocking::Client;

use loop_api::meta::{Binding, Forecast};

use crate::human::{duration, money};
use crate::output::Output;

pub fn run(client: &Client, out: &Output) -> anyhow::Result<ExitCode> {
    let answer = client.accounts()?;
    out.document(&answer);
    if answer.accounts.is_empty() {
        out.line("no account yet: no run in the log");
        return Ok(ExitCode::SUCCESS);
    }
    out.line(&format!(
        "{:<40}  {:>4}  {:>6}  {:>9}  {:>10}  STATE",
        "ACCOUNT", "RUNS", "CALLS", "TODAY", "THIS MONTH"
    ));
    for account in &answer.accounts {
        let why = account.limit_reason.as_deref().unwrap_or("usage limit");
        let state = match (&account.limited_until, account.probe) {
            (Some(until), Some(probe)) => {
                format!("held until {until} ({why}); run {probe} calls first")
            }
            (Some(until), None) => format!("held until {until} ({why})"),
            (None, _) => "ok".to_owned(),
        };
        let mut state = vec![state];
        if let Some(used) = account.window_utilization {
            let window = account.window.as_deref().unwrap_or("window");
            let status = account.window_status.as_deref().unwrap_or("allowed");
            state.push(format!("{window} {:.0}% used ({status})", used * 100.0));
        }
        if let Some(cap) = account.concurrency {
            let waiting = match account.turn_queue.len() {
                0 => String::new(),
                1 => ", 1 run waits for a turn".to_owned(),
                n => format!(", {n} runs wait for a turn"),
            };
            state.push(format!("{}/{cap} calls{waiting}", account.calls_in_flight));
        }
        let state = state.join("; ");
        out.line(&format!(
            "{:<40}  {:>4}  {:>6}  {:>9}  {:>10}  {state}",
            account.account,
            account.runs.len(),
            account.calls,
            money(account.spent_day_usd),
            money(account.spent_month_usd),
        ));
    }
    if !answer.forecasts.is_empty() {
        out.line("");
        out.line(&format!(
            "{:<26}  {:<16}  {:>5}  {:>14}  {:<24}  BINDS FIRST",
            "RUN", "ACCOUNT", "LEFT", "PER ITERATION", "EXPECTED FINISH"
        ));
        for forecast in &answer.forecasts {
            out.line(&forecast_line(forecast));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One run's forecast: its pace, when it should finish, and what binds it first.
fn forecast_line(forecast: &Forecast) -> String {
    let left = forecast
        .tasks_left
        .map_or_else(|| "?".to_owned(), |left| left.to_string());
    let pace = match (forecast.iteration_ms, forecast.iteration_cost_usd) {
        (Some(ms), Some(usd)) => format!("{} {}", duration(ms), money(usd)),
        _ => "-".to_owned(),
    };
    let finish = forecast
        .finish
        .as_deref()
        .unwrap_or(match &forecast.binding {
            Some(Binding::MaxCost { .. }) => "never (max_cost_usd)",
            _ => "not known yet",
        });
    let binds = match &forecast.binding {
        None if forecast.finish_ms.is_some() => "its own pace".to_owned(),
        None => "-".to_owned(),
        Some(Binding::Window {
            account,
            window,
            resets_at_ms,
        }) => format!(
            "{account}'s {window} window (resets {})",
            loop_core::time::rfc3339_ms(*resets_at_ms)
        ),
        Some(Binding::Limit { account, until_ms }) => format!(
            "{account}'s usage limit (resets {})",
            loop_core::time::rfc3339_ms(*until_ms)
        ),
        Some(Binding::MaxCost {
            expected_usd,
            max_usd,
        }) => format!(
            "max_cost_usd: {} expected of {}",
            money(*expected_usd),
            money(*max_usd)
        ),
    };
    format!(
        "{:<26}  {:<16}  {left:>5}  {pace:>14}  {finish:<24}  {binds}",
        forecast.run_id.to_string(),
        forecast.account,
    )
}
