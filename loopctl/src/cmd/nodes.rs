//! `loopctl nodes`: the daemons sharing the event log, from the daemon at --addr.

use std::process::ExitCode;

use loop_client::blocking::Client;

use crate::human::duration;
use crate::output::Output;

pub fn run(client: &Client, out: &Output) -> anyhow::Result<ExitCode> {
    let answer = client.nodes()?;
    out.document(&answer);
    if !answer.cluster {
        out.line("one machine's log (SQLite): this daemon is the only node");
    }
    out.line(&format!(
        "{:<36}  {:<16}  {:<6}  {:>9}  {:>4}  ADDRESS",
        "NODE", "NAME", "STATE", "HEARTBEAT", "RUNS"
    ));
    for node in &answer.nodes {
        let mark = if node.this { " (this one)" } else { "" };
        out.line(&format!(
            "{:<36}  {:<16}  {:<6}  {:>9}  {:>4}  {}{mark}",
            node.id,
            node.name,
            node.state,
            format!("{} ago", duration(node.age_ms)),
            format!("{}/{}", node.run_ids.len(), node.capacity),
            node.address,
        ));
    }
    Ok(ExitCode::SUCCESS)
}
