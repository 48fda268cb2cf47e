//! `loopctl analyze`: a finished run's postmortem on demand, waited for, then its findings (the
//! summary analysis: outcome, root cause, evidence, changes to make) and one line saying where
//! the other files are. The postmortem runs in the daemon, or in a runtime embedded over a log
//! file (see `source.rs`); either way its files land in the run's `analysis/` directory and are
//! recorded in its log.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use loop_api::insight::PostmortemBody;
use loop_client::blocking::Client;
use loop_client::{ClientError, ListRuns};
use loop_core::postmortem::{ANALYSIS_DIR, Analysis};
use loop_core::projection::RunView;
use loop_core::{Event, RunId};
use loop_runtime::{PostmortemReport, PostmortemState, Runtime};
use loop_store::RunQuery;

use crate::connect::named;
use crate::log::embedded;
use crate::output::Output;
use crate::run_ref;
use crate::source::Source;
use crate::workspace;

/// A postmortem that ended, and the texts of its files that are printed.
struct Done {
    report: PostmortemReport,
    /// The three prompts, with `--prompt-only`.
    prompts: Vec<(Analysis, String)>,
    /// The summary analysis, when the agent wrote one.
    summary: Option<String>,
}

/// What `analyze` asks for.
#[derive(Clone, Debug)]
pub struct Ask {
    pub model: Option<String>,
    pub prompt_only: bool,
    /// New analyses although the run has some (paid agent calls).
    pub again: bool,
}

impl Ask {
    /// Whether the analyses the run has (`report`) are what is shown, with no new call.
    fn shows(&self, report: &PostmortemReport) -> bool {
        let summary = Analysis::Summary.answer_file();
        !self.again
            && !self.prompt_only
            && report.status != Some(PostmortemState::Running)
            && report.files.iter().any(|file| file.name == summary)
    }
}

/// `loopctl analyze [RUN | --latest] [--model M] [--prompt-only] [--again]`.
pub fn run(source: Source, run: Option<&str>, ask: &Ask, out: &Output) -> anyhow::Result<ExitCode> {
    let prompt_only = ask.prompt_only;
    let done = match source {
        Source::Daemon(client) => on_daemon(&client, run, ask, out)?,
        Source::Log(db) => in_log(&db, run, ask, out)?,
    };
    let report = &done.report;
    out.document(&crate::documents::Analyzed {
        postmortem: report,
        summary: done.summary.as_deref(),
        prompts: prompt_only.then(|| {
            done.prompts
                .iter()
                .map(|(analysis, text)| (analysis.name(), text.as_str()))
                .collect()
        }),
    });
    for (analysis, text) in &done.prompts {
        out.line(&format!("===== {} =====", analysis.prompt_file()));
        out.agent(text);
        out.line("");
    }
    if let Some(summary) = &done.summary {
        out.agent(summary);
        if !summary.ends_with('\n') {
            out.line("");
        }
        out.line("");
    }
    if !prompt_only {
        out.line(&where_the_files_are(report));
    }
    let status = report.status.map_or("unknown", PostmortemState::as_str);
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

/// `full analysis in DIR: spec-compliance.md, run-quality.md, summary.md and N more files`.
fn where_the_files_are(report: &PostmortemReport) -> String {
    let answers: Vec<String> = Analysis::ALL
        .iter()
        .map(|analysis| analysis.answer_file())
        .filter(|name| report.files.iter().any(|file| &file.name == name))
        .collect();
    let others = report.files.len() - answers.len();
    let more = match (answers.is_empty(), others) {
        (true, 0) => "no files".to_owned(),
        (true, n) => format!("{n} file{}", plural(n)),
        (false, 0) => answers.join(", "),
        (false, n) => format!(
            "{}, and {n} more file{} (snapshots, prompts)",
            answers.join(", "),
            plural(n)
        ),
    };
    format!("full analysis in {}: {more}", report.dir)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The postmortem asked of the daemon, waited for on its event stream, its files read back
/// through its artifact route (the daemon may run on another machine).
fn on_daemon(client: &Client, run: Option<&str>, ask: &Ask, out: &Output) -> anyhow::Result<Done> {
    let prompt_only = ask.prompt_only;
    let view = match run {
        Some(text) => run_ref::on_daemon(client, text)?,
        None => latest_on_daemon(client)?,
    };
    let id = view.id;
    // Listen from before the start, so an end that comes at once is not missed. The run's own
    // stream ends with the run; the stream of every run's events does not.
    let mut events = client.events(None, view.last_seq);
    let existing = client.postmortem(id).map_err(|error| named(error, id))?;
    let started = if ask.shows(&existing) {
        shown(&view, &existing, out);
        existing
    } else if existing.status == Some(PostmortemState::Running) && !ask.again {
        // One is under way (the run just ended): its end is waited for, not paid twice.
        announce(&view, prompt_only, out);
        existing
    } else {
        announce(&view, prompt_only, out);
        client
            .start_postmortem(
                id,
                &PostmortemBody {
                    model: ask.model.clone(),
                    prompt_only,
                },
            )
            .map_err(|error| named(error, id))?
    };
    if started.status == Some(PostmortemState::Running) {
        loop {
            match events.next() {
                Some(Ok(record))
                    if record.run_id == id && matches!(record.event, Event::PostmortemEnd(_)) =>
                {
                    break;
                }
                // Another run's event, or one this client cannot read: not the end sought.
                Some(Ok(_) | Err(ClientError::Undecodable { .. })) => {}
                Some(Err(error)) => return Err(named(error, id)),
                None => bail!("the daemon's event stream ended before the postmortem of {id} did"),
            }
        }
    }
    let report = client.postmortem(id).map_err(|error| named(error, id))?;
    collect(report, prompt_only, |name| {
        let bytes = client
            .artifact(id, &format!("{ANALYSIS_DIR}/{name}"))
            .map_err(|error| named(error, id))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    })
}

/// The postmortem run in this process over the log at `db`, its files read from disk.
fn in_log(db: &Path, run: Option<&str>, ask: &Ask, out: &Output) -> anyhow::Result<Done> {
    let prompt_only = ask.prompt_only;
    let report = embedded(db, async |runtime| {
        let run_id = match run {
            Some(text) => runtime.find(text).await?.id,
            None => latest_in_log(runtime).await?,
        };
        let view = runtime.get(run_id).await?;
        let existing = runtime.postmortem_report(run_id).await?;
        if ask.shows(&existing) {
            shown(&view, &existing, out);
            return Ok(existing);
        }
        announce(&view, prompt_only, out);
        runtime
            .postmortem(run_id, ask.model.clone(), prompt_only)
            .await?;
        Ok(runtime.wait_postmortem(run_id).await?)
    })?;
    let dir = Path::new(&report.dir).to_owned();
    collect(report, prompt_only, |name| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
    })
}

/// Says that the postmortem shown is the one the run has, and how to pay for a new one.
fn shown(view: &RunView, report: &PostmortemReport, out: &Output) {
    out.note(&format!(
        "the postmortem run {} has ({}); `loopctl analyze {} --again` runs new analyses (paid \
         agent calls)",
        view.name,
        report.started_because.as_deref().unwrap_or("earlier"),
        view.name
    ));
}

fn announce(view: &RunView, prompt_only: bool, out: &Output) {
    out.note(&format!(
        "postmortem of run {} ({}, {}){}",
        view.id,
        view.name,
        view.status,
        if prompt_only { ": prompts only" } else { "" }
    ));
}

/// The texts to print, each read by `read` (a file name in the analysis directory).
fn collect(
    report: PostmortemReport,
    prompt_only: bool,
    read: impl Fn(&str) -> anyhow::Result<String>,
) -> anyhow::Result<Done> {
    let prompts = if prompt_only {
        Analysis::ALL
            .iter()
            .map(|analysis| Ok((*analysis, read(&analysis.prompt_file())?)))
            .collect::<anyhow::Result<_>>()?
    } else {
        Vec::new()
    };
    let summary_file = Analysis::Summary.answer_file();
    let summary = if !prompt_only && report.files.iter().any(|file| file.name == summary_file) {
        Some(read(&summary_file)?)
    } else {
        None
    };
    Ok(Done {
        report,
        prompts,
        summary,
    })
}

/// The newest finished run of this workspace on the daemon; of any workspace when this one has
/// none.
fn latest_on_daemon(client: &Client) -> anyhow::Result<RunView> {
    let root = current_root()?;
    let newest_finished = |workspace_root: Option<String>| -> anyhow::Result<Option<RunView>> {
        let mut query = ListRuns {
            workspace_root,
            ..ListRuns::default()
        };
        loop {
            let page = client.list_runs(&query)?;
            if let Some(run) = page.runs.into_iter().find(|run| run.status.is_terminal()) {
                return Ok(Some(run));
            }
            match page.next {
                Some(next) => query.before = Some(next),
                None => return Ok(None),
            }
        }
    };
    match newest_finished(Some(root.to_string_lossy().into_owned()))? {
        Some(run) => Ok(run),
        None => newest_finished(None)?.ok_or_else(|| no_finished_run(&root)),
    }
}

/// The newest finished run of this workspace in the log; of any workspace when this one has no
/// run.
async fn latest_in_log(runtime: &Runtime) -> anyhow::Result<RunId> {
    let root = current_root()?;
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
        None => Err(no_finished_run(&root)),
    }
}

fn current_root() -> anyhow::Result<std::path::PathBuf> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    Ok(workspace::root_of(&cwd))
}

fn no_finished_run(root: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "no finished run in {} or elsewhere: pass a run",
        root.display()
    )
}
