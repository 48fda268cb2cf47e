//! `loopctl events RUN [-f] [--after SEQ]`: a run's event log, once or followed live (resumed
//! after the last seq shown when the connection is lost).

use std::io::IsTerminal;
use std::process::ExitCode;

use loop_client::ClientError;
use loop_client::blocking::Client;
use loop_core::{EventRecord, Seq};

use crate::connect::{named, reconnect_notes, retrying};
use crate::output::Output;
use crate::run_ref;
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
    let id = run_ref::on_daemon(client, text)?.id;
    let printer = Printer {
        out,
        colour: Colour::stdout(),
        cut_payloads: std::io::stdout().is_terminal(),
    };
    let after = Seq(after.unwrap_or(0));
    if !follow {
        let events = client
            .events_so_far(id, after)
            .map_err(|error| named(error, id))?;
        let envelope = loop_api::runs::EventsEnvelope { events };
        out.document(&envelope);
        let events = envelope.events;
        for event in &events {
            printer.human(event);
        }
        return Ok(ExitCode::SUCCESS);
    }
    // A run that ended has a log that will not grow unless it is retried: the rest of it is
    // read at once (a stream would wait for a terminal event that already passed).
    let view = retrying(client, out, || client.run(id)).map_err(|error| named(error, id))?;
    if view.status == loop_core::RunStatus::Pending {
        let why = crate::cmd::tail::pending(&view, "its events follow as it runs");
        out.note(&format!("── run {why}"));
    }
    let events: Box<dyn Iterator<Item = Result<EventRecord, ClientError>>> =
        if view.status.is_terminal() {
            let events = client
                .events_so_far(id, after)
                .map_err(|error| named(error, id))?;
            Box::new(events.into_iter().map(Ok))
        } else {
            Box::new(
                client
                    .events(Some(id), after)
                    .on_reconnect(reconnect_notes(client)),
            )
        };
    for event in events {
        match event {
            Ok(event) if out.json => out.json_line(&event.to_json()),
            Ok(event) => printer.human(&event),
            Err(ClientError::Undecodable { seq, message }) => {
                out.note(&format!("loopctl: event {seq} cannot be read: {message}"));
            }
            Err(error) => return Err(named(error, id)),
        }
    }
    Ok(ExitCode::SUCCESS)
}

struct Printer<'a> {
    out: &'a Output,
    colour: Colour,
    cut_payloads: bool,
}

impl Printer<'_> {
    /// One event as a line: seq, time of day (UTC), type, payload.
    fn human(&self, event: &EventRecord) {
        let seq = event.seq.0;
        let time = loop_core::time::rfc3339_ms(event.ts_ms);
        let kind = event.event.event_type().as_str();
        let mut payload = event.event.payload_json();
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
