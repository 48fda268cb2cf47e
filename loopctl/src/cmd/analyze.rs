//! `loopctl analyze`: a finished run's postmortem on demand, with the runtime embedded over the
//! event log (no daemon), waiting for it to end. The files land in the run's `analysis/`
//! directory and are recorded in its log, as a daemon's postmortem's are.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use loop_core::RunId;
use loop_core::postmortem::Analysis;
use loop_runtime::{PostmortemReport, Runtime};
use loop_store::RunQuery;

use crate::human::size;
use crate::log::embedded;
use crate::output::Output;
use crate::workspace;

/// `loopctl analyze [RUN | --latest] [--model M] [--prompt-only]`.
pub fn run(
    run: Option<&str>,
    model: Option<String>,
    prompt_only: bool,
    db: Option<PathBuf>,
    out: &Output,
) -> anyhow::Result<ExitCode> {
    let report = embedded(db, async |runtime| {
        let run_id = match run {
            Some(text) => runtime.find(text).await?.id,
            None => latest(runtime).await?,
        };
        let view = runtime.get(run_id).await?;
        out.note(&format!(
            "postmortem of run {} ({}, {}){}",
            view.id,
            view.name,
            view.status,
            if prompt_only { ": prompts only" } else { "" }
        ));
        runtime.postmortem(run_id, model, prompt_only).await?;
        Ok(runtime.wait_postmortem(run_id).await?)
    })?;
    let dir = PathBuf::from(&report.dir);
    let prompts: Vec<(Analysis, String)> = if prompt_only {
        Analysis::ALL
            .iter()
            .map(|analysis| {
                let path = dir.join(analysis.prompt_file());
                std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))
                    .map(|text| (*analysis, text))
            })
            .collect::<anyhow::Result<_>>()?
    } else {
        Vec::new()
    };
    let mut document = serde_json::json!({ "postmortem": report });
    if prompt_only {
        document["prompts"] = prompts
            .iter()
            .map(|(analysis, text)| (analysis.name().to_owned(), text.clone().into()))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    out.document(&document);
    for (analysis, text) in &prompts {
        out.line(&format!("===== {} =====", analysis.prompt_file()));
        out.raw(text);
        out.line("");
    }
    if !prompt_only {
        print_files(&report, out);
    }
    let status = report.status.as_deref().unwrap_or("unknown");
    let verdict = match &report.reason {
        Some(reason) => format!("postmortem {status}: {reason}"),
        None => format!("postmortem {status}"),
    };
    out.note(&format!("{verdict} ({})", report.dir));
    Ok(if status == "failed" {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The answers and snapshots, for people.
fn print_files(report: &PostmortemReport, out: &Output) {
    for file in &report.files {
        out.line(&format!(
            "{:>10}  {}/{}",
            size(file.bytes),
            report.dir,
            file.name
        ));
    }
}

/// The newest finished run of this workspace; of any workspace when this one has no run.
async fn latest(runtime: &Runtime) -> anyhow::Result<RunId> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let root = workspace::root_of(&cwd);
    let here = runtime
        .list(RunQuery {
            workspace_root: Some(root.to_string_lossy().into_owned()),
            ..RunQuery::default()
        })
        .await?;
    let runs = if here.is_empty() {
        runtime.list(RunQuery::default()).await?
    } else {
        here
    };
    match runs.iter().find(|run| run.status.is_terminal()) {
        Some(run) => Ok(run.id),
        None => bail!(
            "no finished run in {} or elsewhere in this log: pass a run",
            root.display()
        ),
    }
}
