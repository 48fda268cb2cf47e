//! The state changes (`pause`, `resume`, `cancel`, `retry`) and `wait`.

use std::process::ExitCode;

use loop_api::runs::RunEnvelope;
use loop_client::Control;
use loop_client::blocking::Client;
use loop_core::RunId;
use loop_core::projection::RunView;

use crate::connect::named;
use crate::output::Output;
use crate::render::{closing, exit_status, summary};
use crate::run_ref;
use crate::table::{Colour, Paint};

/// `loopctl pause|resume|cancel|retry RUN`.
pub fn control(
    client: &Client,
    text: &str,
    action: Control,
    out: &Output,
) -> anyhow::Result<ExitCode> {
    let id = run_ref::on_daemon(client, text)?.id;
    let view = client
        .control(id, action)
        .map_err(|error| named(error, id))?;
    let envelope = RunEnvelope { run: view };
    out.document(&envelope);
    let view = envelope.run;
    let colour = Colour::stdout();
    let status = colour.paint(Paint::of_status(view.status), view.status.as_str());
    if view.pause_requested {
        out.line(&format!(
            "run {} ({}) is {status}; it pauses once its current step ends",
            view.id, view.name
        ));
        out.note(&format!(
            "`loopctl pause {} --now` stops the agent's call now; `loopctl resume {}` goes on \
             after the pause",
            view.name, view.name
        ));
        return Ok(ExitCode::SUCCESS);
    }
    out.line(&format!("run {} ({}) is {status}", view.id, view.name));
    if matches!(action, Control::Pause | Control::PauseNow) {
        out.note(&format!("`loopctl resume {}` goes on from here", view.name));
    }
    Ok(ExitCode::SUCCESS)
}

/// Blocks until run `id` is in a terminal state; the final run.
pub fn wait_for_end(client: &Client, id: RunId) -> anyhow::Result<RunView> {
    client.wait(id).map_err(|error| named(error, id))
}

/// `loopctl wait RUN`: exit 0 only for COMPLETED.
pub fn wait(client: &Client, text: &str, out: &Output) -> anyhow::Result<ExitCode> {
    let id = run_ref::on_daemon(client, text)?.id;
    let view = wait_for_end(client, id)?;
    let envelope = RunEnvelope { run: view };
    out.document(&envelope);
    let view = envelope.run;
    out.line(&summary(&view));
    for line in closing(&view) {
        out.note(&line);
    }
    Ok(exit_status(&view))
}
