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
        let state = match (&account.limited_until, account.probe) {
            (Some(until), Some(probe)) => {
                format!("limit reset at {until}; run {probe} calls first")
            }
            (Some(until), None) => format!("usage limit until {until}"),
            (None, _) => "ok".to_owned(),
        };
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
