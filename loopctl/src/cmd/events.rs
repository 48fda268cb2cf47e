//! `loopctl events RUN [-f] [--after SEQ]`: a run's event log, once or followed live (resumed
//! after the last seq shown when the connection is lost).

use std::io::IsTerminal;
use std::process::ExitCode;

use loop_core::RunId;
use serde_json::Value;

use crate::client::{Client, ClientError};
use crate::cmd::runs::{self, cut, lost, retrying};
use crate::output::Output;
use crate::table::{Colour, Paint};

/// Payloads longer than this are cut on a terminal (`--json` has them whole).
const PAYLOAD_ON_TERMINAL: usize = 160;

pub fn events(
    client: &Client,
    text: &str,
    follow: bool,
    after: Option<u64>,
    out: &Output,
) -> anyhow::Result<ExitCode> {
    let id = runs::resolve(client, text)?;
    let printer = Printer {
        out,
        colour: Colour::stdout(),
        cut_payloads: std::io::stdout().is_terminal(),
    };
    let mut seen = after.unwrap_or(0);
    if !follow {
        let events = list_after(client, id, seen)?;
        out.document(&serde_json::json!({ "events": events }));
        for event in &events {
            printer.human(event);
        }
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        // A run that ended has a log that will not grow unless it is retried: the rest of it
        // is read at once (a stream would wait for a terminal event that already passed).
        let (_, view) = retrying(client, out, || runs::get(client, id))?;
        if view.status.is_terminal() {
            for event in list_after(client, id, seen)? {
                if out.json {
                    out.document(&event);
                } else {
                    printer.human(&event);
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        let streamed = (|| -> Result<(), ClientError> {
            let mut frames =
                client.stream(&format!("/runs/{id}/events"), Some(&seen.to_string()))?;
            while let Some(frame) = frames.next_frame().map_err(|e| cut(client, &e))? {
                let Some(seq) = frame.id.as_deref().and_then(|id| id.parse::<u64>().ok()) else {
                    continue;
                };
                if seq <= seen {
                    continue;
                }
                if out.json {
                    // The event exactly as the daemon sent it, one per line.
                    out.json_line(&frame.data);
                } else if let Ok(event) = serde_json::from_str::<Value>(&frame.data) {
                    printer.human(&event);
                }
                seen = seq;
            }
            Ok(())
        })();
        match streamed {
            // The stream ends after a terminal event, or when the daemon stops.
            Ok(()) => {}
            Err(error) if error.is_transient() => lost(client, out)?,
            Err(error) => return Err(runs::named(error, id)),
        }
    }
}

/// The run's events after `seq`, as the daemon's JSON.
fn list_after(client: &Client, id: RunId, seq: u64) -> anyhow::Result<Vec<Value>> {
    let answer = client
        .get(&format!("/runs/{id}/events?format=json&after={seq}"))
        .map_err(|error| runs::named(error, id))?;
    Ok(answer["events"].as_array().cloned().unwrap_or_default())
}

struct Printer<'a> {
    out: &'a Output,
    colour: Colour,
    cut_payloads: bool,
}

impl Printer<'_> {
    /// One event as a line: seq, time of day (UTC), type, payload.
    fn human(&self, event: &Value) {
        let seq = event["seq"].as_u64().unwrap_or(0);
        let time = event["ts_ms"]
            .as_i64()
            .map(loop_core::time::rfc3339_ms)
            .unwrap_or_default();
        let kind = event["type"].as_str().unwrap_or("?");
        let mut payload = event["payload"].to_string();
        if self.cut_payloads && payload.chars().count() > PAYLOAD_ON_TERMINAL {
            payload = payload.chars().take(PAYLOAD_ON_TERMINAL - 1).collect();
            payload.push('…');
        }
        let paint = match kind {
            "RUN_COMPLETED" => Paint::Green,
            "RUN_FAILED" => Paint::Red,
            "RUN_CANCELED" | "RUN_PAUSED" => Paint::Yellow,
            _ => Paint::Bold,
        };
        self.out.line(&format!(
            "{seq:>7}  {}  {}{}  {payload}",
            self.colour.paint(Paint::Dim, &time),
            self.colour.paint(paint, kind),
            " ".repeat(22usize.saturating_sub(kind.len()))
        ));
    }
}
