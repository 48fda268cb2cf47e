//! `loopctl accounts`: the agent accounts of the runs, from the daemon at --addr.

use std::process::ExitCode;

use loop_client::blocking::Client;

use crate::human::money;
use crate::output::Output;

pub fn run(client: &Client, out: &Output) -> anyhow::Result<ExitCode> {
    let answer = client.accounts()?;
    out.document(&serde_json::to_value(&answer)?);
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
    Ok(ExitCode::SUCCESS)
}
