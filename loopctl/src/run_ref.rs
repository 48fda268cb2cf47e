//! Naming a run on the command line: a full id, a unique id prefix, or a unique name.

use anyhow::{Context, bail};
use loop_core::RunId;
use loop_core::projection::RunView;
use loop_store::{EventStore, RunQuery};

/// The run `text` names among the runs of `store`.
pub fn resolve(store: &dyn EventStore, text: &str) -> anyhow::Result<RunId> {
    resolve_among(text, || {
        store
            .list_runs(&RunQuery::default())
            .context("cannot list runs")
    })
}

/// The run `text` names: a full id as it is, else the one run of `runs()` whose id starts with
/// `text` or whose name is `text`. The runs are only listed when `text` is not a full id.
pub fn resolve_among(
    text: &str,
    runs: impl FnOnce() -> anyhow::Result<Vec<RunView>>,
) -> anyhow::Result<RunId> {
    if let Ok(id) = text.parse::<RunId>() {
        return Ok(id);
    }
    pick(&runs()?, text)
}

fn pick(runs: &[RunView], text: &str) -> anyhow::Result<RunId> {
    let lower = text.to_ascii_lowercase();
    let by_prefix: Vec<&RunView> = runs
        .iter()
        .filter(|run| run.id.to_string().starts_with(&lower))
        .collect();
    let by_name: Vec<&RunView> = runs.iter().filter(|run| run.name == text).collect();
    match (by_prefix.as_slice(), by_name.as_slice()) {
        ([only], []) | ([], [only]) => Ok(only.id),
        ([a], [b]) if a.id == b.id => Ok(a.id),
        ([], []) => bail!("no run matches {text:?} (give a full id, an id prefix or a run name)"),
        (prefixed, named) => {
            let mut ids: Vec<String> = prefixed
                .iter()
                .chain(named)
                .map(|run| format!("{} ({})", run.id, run.name))
                .collect();
            ids.dedup();
            bail!(
                "{text:?} names {} runs: {}; give more of the id",
                ids.len(),
                ids.join(", ")
            )
        }
    }
}
