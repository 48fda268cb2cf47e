//! Naming a run on the command line: a full id, a unique id prefix, its name or its branch.
//! The daemon looks it up (`GET /runs/lookup`); commands that read a log file directly ask the
//! store the same question.

use anyhow::Context;
use loop_client::ClientError;
use loop_client::blocking::Client;
use loop_core::RunId;
use loop_core::projection::RunView;
use loop_store::EventStore;

use crate::error::Coded;

/// The run `text` names, as the daemon has it now.
pub fn on_daemon(client: &Client, text: &str) -> anyhow::Result<RunView> {
    client.find(text).map_err(|error| match error {
        ClientError::Ambiguous { runs, .. } => ambiguous(text, &runs),
        other if other.code() == Some("run_not_found") => Coded::like(
            &other,
            format!(
                "no run matches {text:?} (an id, an id prefix, a name or a branch): `loopctl \
                 list` shows the runs"
            ),
        )
        .into(),
        other => other.into(),
    })
}

/// The run `text` names in the log of `store`.
pub fn in_log(store: &dyn EventStore, text: &str) -> anyhow::Result<RunId> {
    let runs = store
        .find_runs(text, 20)
        .context("cannot look the run up")?;
    match runs.as_slice() {
        [] => Err(Coded::new(
            "run_not_found",
            format!("no run matches {text:?} (give an id, an id prefix, a run name or its branch)"),
        )
        .into()),
        [only] => Ok(only.id),
        several => Err(ambiguous(text, several)),
    }
}

fn ambiguous(text: &str, runs: &[RunView]) -> anyhow::Error {
    let ids: Vec<String> = runs
        .iter()
        .map(|run| format!("{} ({})", run.id, run.name))
        .collect();
    Coded::new(
        "ambiguous",
        format!(
            "{text:?} names {} runs: {}; give more of the id",
            ids.len(),
            ids.join(", ")
        ),
    )
    .into()
}
