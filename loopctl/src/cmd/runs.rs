//! Runs on the daemon: naming one, `list`, `inspect`, the state changes, and `wait`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use loop_core::projection::{RunView, StepView};
use loop_core::{RunId, RunStatus};
use serde_json::{Value, json};

use crate::client::{Client, ClientError, field};
use crate::human::{self, ago, duration, money, size, tokens};
use crate::output::Output;
use crate::sse::Frame;
use crate::table::{Cell, Colour, Paint, Table};
use crate::{run_ref, workspace};

/// Runs per page when listing: the most the daemon gives at once.
const PAGE: usize = 1000;

/// Up to `limit` runs (every run for 0), newest first, following the daemon's pages; the raw
/// documents and whether more were left.
fn fetch(
    client: &Client,
    status: Option<&str>,
    workspace_root: Option<&Path>,
    limit: usize,
) -> anyhow::Result<(Vec<Value>, Option<String>)> {
    let mut runs: Vec<Value> = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let want = match limit {
            0 => PAGE,
            n => (n - runs.len()).min(PAGE),
        };
        let mut query = vec![format!("limit={want}")];
        if let Some(status) = status {
            query.push(format!("status={status}"));
        }
        if let Some(root) = workspace_root {
            query.push(format!(
                "workspace_root={}",
                encode(&root.to_string_lossy())
            ));
        }
        if let Some(before) = &before {
            query.push(format!("before={before}"));
        }
        let page = client.get(&format!("/runs?{}", query.join("&")))?;
        let got: Vec<Value> = field(&page, "runs")?;
        let next = page.get("next").and_then(Value::as_str).map(str::to_owned);
        runs.extend(got);
        let full = limit != 0 && runs.len() >= limit;
        match next {
            Some(next) if !full => before = Some(next),
            next => return Ok((runs, next)),
        }
    }
}

/// Percent-encodes a query value.
fn encode(text: &str) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~/".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn views(runs: &[Value]) -> anyhow::Result<Vec<RunView>> {
    runs.iter()
        .map(|run| {
            serde_json::from_value(run.clone())
                .context("cannot read a run in loopd's answer (is loopd the same version?)")
        })
        .collect()
}

/// The run `text` names: a full id, a unique id prefix, or a unique name.
pub fn resolve(client: &Client, text: &str) -> anyhow::Result<RunId> {
    run_ref::resolve_among(text, || views(&fetch(client, None, None, 0)?.0))
}

/// The run as the daemon has it now: the document and the view.
pub fn get(client: &Client, id: RunId) -> Result<(Value, RunView), anyhow::Error> {
    let answer = client
        .get(&format!("/runs/{id}"))
        .map_err(|error| named(error, id))?;
    let run: Value = field(&answer, "run")?;
    let view = serde_json::from_value(run.clone()).context("cannot read the run")?;
    Ok((run, view))
}

/// A daemon error about run `id`, with the run named.
pub fn named(error: ClientError, id: RunId) -> anyhow::Error {
    match error.code() {
        Some("run_not_found") => anyhow::anyhow!("no run {id}: `loopctl list` shows the runs"),
        Some("illegal_transition") => {
            anyhow::anyhow!("run {id}: {error}")
        }
        _ => error.into(),
    }
}

/// `loopctl list`.
pub fn list(
    client: &Client,
    status: Option<&str>,
    this_workspace: bool,
    limit: usize,
    out: &Output,
) -> anyhow::Result<ExitCode> {
    let root = if this_workspace {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        Some(workspace::root_of(&cwd))
    } else {
        None
    };
    let (runs, next) = fetch(client, status, root.as_deref(), limit)?;
    out.document(&json!({ "runs": runs, "next": next }));
    if out.json {
        return Ok(ExitCode::SUCCESS);
    }
    let views = views(&runs)?;
    if views.is_empty() {
        out.line("no runs");
        return Ok(ExitCode::SUCCESS);
    }
    let colour = Colour::stdout();
    let now = human::now_ms();
    let ids = short_ids(&views);
    let mut table = Table::new(&[
        "ID",
        "NAME",
        "STATUS",
        ">TASKS",
        ">ITER",
        ">COST",
        "CREATED",
        "UPDATED",
        "WORKSPACE",
    ]);
    for (view, id) in views.iter().zip(ids) {
        table.row(vec![
            id.into(),
            view.name.as_str().into(),
            Cell::painted(view.status.as_str(), Paint::of_status(view.status)),
            format!("{}/{}", view.tasks_done, view.tasks_total).into(),
            view.iteration.to_string().into(),
            money(view.cost_usd).into(),
            ago(view.created_ms, now).into(),
            ago(view.updated_ms, now).into(),
            Path::new(&view.workspace_root)
                .file_name()
                .map_or_else(
                    || view.workspace_root.clone(),
                    |n| n.to_string_lossy().into(),
                )
                .into(),
        ]);
    }
    for line in table.lines(colour) {
        out.line(&line);
    }
    if next.is_some() {
        out.note(&format!(
            "the newest {} runs; --limit N for more, --limit 0 for all",
            views.len()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// Each id cut to the shortest prefix (8 characters at least) that no other listed id shares.
fn short_ids(views: &[RunView]) -> Vec<String> {
    let ids: Vec<String> = views.iter().map(|v| v.id.to_string()).collect();
    let sorted: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    let sorted: Vec<&str> = sorted.into_iter().collect();
    let common = |a: &str, b: &str| a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    ids.iter()
        .map(|id| {
            let at = sorted.binary_search(&id.as_str()).unwrap_or(0);
            let before = at.checked_sub(1).map_or(0, |i| common(id, sorted[i]));
            let after = sorted.get(at + 1).map_or(0, |other| common(id, other));
            let keep = (before.max(after) + 1).max(8).min(id.len());
            id[..keep].to_owned()
        })
        .collect()
}

/// The steps of run `id`.
pub fn steps(client: &Client, id: RunId) -> Result<(Value, Vec<StepView>), anyhow::Error> {
    let answer = client
        .get(&format!("/runs/{id}/steps"))
        .map_err(|error| named(error, id))?;
    let steps: Vec<StepView> = field(&answer, "steps")?;
    Ok((answer["steps"].clone(), steps))
}

/// `loopctl inspect RUN`.
pub fn inspect(client: &Client, text: &str, out: &Output) -> anyhow::Result<ExitCode> {
    let id = resolve(client, text)?;
    let (run, view) = get(client, id)?;
    let (steps_doc, steps) = steps(client, id)?;
    let artifacts = client
        .get(&format!("/runs/{id}/artifacts"))
        .map_err(|error| named(error, id))?;
    let files: Vec<(String, u64)> = artifacts["artifacts"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter_map(|a| Some((a["name"].as_str()?.to_owned(), a["bytes"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    let run_dir = artifacts["dir"]
        .as_str()
        .map(PathBuf::from)
        .or_else(|| run_dir_of(&steps));
    out.document(&json!({
        "run": run,
        "steps": steps_doc,
        "artifacts": artifacts["artifacts"],
        "run_dir": run_dir,
    }));
    if out.json {
        return Ok(ExitCode::SUCCESS);
    }
    let colour = Colour::stdout();
    let now = human::now_ms();
    let mut facts: Vec<(&str, String)> = vec![
        (
            "run",
            format!("{}  {}", view.id, colour.paint(Paint::Bold, &view.name)),
        ),
        (
            "status",
            colour.paint(Paint::of_status(view.status), &verdict(&view)),
        ),
        ("workspace", view.workspace_root.clone()),
        ("spec", view.spec_path.clone()),
        ("plan", view.plan_path.clone()),
        (
            "created",
            format!("{} ({})", view.created_at, ago(view.created_ms, now)),
        ),
        (
            "updated",
            format!("{} ({})", view.updated_at, ago(view.updated_ms, now)),
        ),
        ("worktree", worktree(&view)),
    ];
    let tree = &view.worktree;
    if let Some(target) = &tree.merge_target_branch {
        facts.push(("merge", format!("{} into {target}", tree.merge_strategy)));
    }
    let (input, output) = steps
        .iter()
        .filter_map(|s| s.tokens)
        .fold((0, 0), |(i, o), t| (i + t.input, o + t.output));
    facts.push((
        "progress",
        format!(
            "iteration {} · tasks {}/{} · cost {} · tokens {} in, {} out",
            view.iteration,
            view.tasks_done,
            view.tasks_total,
            money(view.cost_usd),
            tokens(input),
            tokens(output)
        ),
    ));
    if let Some(step) = &view.current_step {
        facts.push((
            "now",
            format!(
                "{}, iteration {}, attempt {}",
                step.phase.as_str(),
                step.iteration,
                step.attempt
            ),
        ));
    }
    if let Some(postmortem) = &view.postmortem {
        facts.push(("postmortem", postmortem.clone()));
    }
    for (key, value) in facts {
        out.line(&format!(
            "{} {value}",
            colour.paint(Paint::Dim, &format!("{key:<10}"))
        ));
    }
    out.line("");
    if steps.is_empty() {
        out.line("no steps yet");
    } else {
        let mut table = Table::new(&[
            ">#",
            "PHASE",
            ">ITER",
            ">TRY",
            "STATUS",
            ">EXIT",
            ">DURATION",
            ">TOKENS",
            ">COST",
            "STARTED",
            "NOTE",
        ]);
        for (n, step) in steps.iter().enumerate() {
            let duration_ms = step.duration_ms.or_else(|| {
                (step.finished_ms.is_none()).then(|| (now - step.started_ms).max(0) as u64)
            });
            let note = match (&step.message, step.commands.as_slice()) {
                (Some(message), _) => one_line(message, 60),
                (None, []) => String::new(),
                (None, commands) => {
                    let failed = commands.iter().filter(|c| c.exit_code != Some(0)).count();
                    format!("{} commands, {failed} failed", commands.len())
                }
            };
            table.row(vec![
                (n + 1).to_string().into(),
                step.phase.as_str().into(),
                step.iteration.to_string().into(),
                step.attempt.to_string().into(),
                Cell::painted(step.status.as_str(), Paint::of_step(step.status)),
                step.exit_code
                    .map_or_else(String::new, |c| c.to_string())
                    .into(),
                duration_ms.map_or_else(String::new, duration).into(),
                step.tokens
                    .map_or_else(String::new, |t| {
                        format!("{}/{}", tokens(t.input), tokens(t.output))
                    })
                    .into(),
                step.cost_usd.map_or_else(String::new, money).into(),
                ago(step.started_ms, now).into(),
                note.into(),
            ]);
        }
        for line in table.lines(colour) {
            out.line(&line);
        }
    }
    out.line("");
    match (&run_dir, files.is_empty()) {
        (_, true) => out.line("no files yet"),
        (Some(dir), false) => out.line(&format!("files in {}", dir.display())),
        (None, false) => out.line("files in the run directory"),
    }
    let width = files
        .iter()
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(0);
    for (name, bytes) in &files {
        out.line(&format!("  {name:<width$}  {:>10}", size(*bytes)));
    }
    Ok(ExitCode::SUCCESS)
}

/// The run directory, as the steps' files show it.
fn run_dir_of(steps: &[StepView]) -> Option<PathBuf> {
    steps
        .iter()
        .flat_map(|s| [s.output_path.as_deref(), s.prompt_path.as_deref()])
        .flatten()
        .map(Path::new)
        .find(|p| p.is_absolute())
        .and_then(Path::parent)
        .map(Path::to_path_buf)
}

fn one_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max - 1).collect::<String>())
    } else {
        line.to_owned()
    }
}

fn worktree(view: &RunView) -> String {
    let tree = &view.worktree;
    match (&tree.worktree_path, &tree.provider) {
        (_, Some(provider)) if provider == "none" => "none (works in the workspace)".to_owned(),
        (Some(path), provider) => format!(
            "{path} (branch {} from {}, {}){}",
            tree.run_branch.as_deref().unwrap_or("?"),
            tree.base_branch.as_deref().unwrap_or("?"),
            provider.as_deref().unwrap_or("?"),
            if tree.removed { ", removed" } else { "" }
        ),
        (None, Some(provider)) => format!("not made yet ({provider})"),
        (None, None) => "not made yet".to_owned(),
    }
}

/// The status with why it ended: `COMPLETED (complete_plan)`, `FAILED: <reason>`.
pub fn verdict(view: &RunView) -> String {
    match (&view.exit_reason, &view.failure_reason) {
        (_, Some(reason)) if view.status == RunStatus::Failed => {
            format!("{}: {}", view.status, one_line(reason, 200))
        }
        (Some(exit), _) if view.status.is_terminal() => {
            format!("{} ({})", view.status, exit.as_str())
        }
        _ => view.status.to_string(),
    }
}

/// A closing line for a run that ended.
pub fn summary(view: &RunView) -> String {
    format!(
        "run {} ({}) {}; {}/{} tasks, {} iterations, {}, {}",
        view.id,
        view.name,
        verdict(view),
        view.tasks_done,
        view.tasks_total,
        view.iteration,
        duration((view.updated_ms - view.created_ms).max(0) as u64),
        money(view.cost_usd)
    )
}

/// 0 for a COMPLETED run, 1 for any other end.
pub fn exit_status(view: &RunView) -> ExitCode {
    if view.status == RunStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `loopctl pause|resume|cancel|retry RUN`.
pub fn control(
    client: &Client,
    text: &str,
    action: &str,
    out: &Output,
) -> anyhow::Result<ExitCode> {
    let id = resolve(client, text)?;
    let answer = client
        .post(&format!("/runs/{id}/{action}"), &json!({}))
        .map_err(|error| named(error, id))?;
    out.document(&answer);
    let view: RunView = field(&answer, "run")?;
    let colour = Colour::stdout();
    out.line(&format!(
        "run {} ({}) is {}",
        view.id,
        view.name,
        colour.paint(Paint::of_status(view.status), view.status.as_str())
    ));
    Ok(ExitCode::SUCCESS)
}

/// Blocks until run `id` is in a terminal state, following its event stream (resumed after a
/// lost connection); the final run.
pub fn wait_for_end(client: &Client, id: RunId, out: &Output) -> anyhow::Result<(Value, RunView)> {
    loop {
        let (run, view) = retrying(client, out, || get(client, id))?;
        if view.status.is_terminal() {
            return Ok((run, view));
        }
        // Wait on the log for a terminal event; any end of the stream is checked against the run.
        let after = view.last_seq.0.to_string();
        let ended = (|| -> Result<(), ClientError> {
            let mut frames = client.stream(&format!("/runs/{id}/events"), Some(&after))?;
            while let Some(frame) = frames.next_frame().map_err(|e| cut(client, &e))? {
                if is_terminal_frame(&frame) {
                    break;
                }
            }
            Ok(())
        })();
        if let Err(error) = ended {
            if !error.is_transient() {
                return Err(named(error, id));
            }
            lost(client, out)?;
        }
    }
}

fn is_terminal_frame(frame: &Frame) -> bool {
    matches!(
        frame.event.as_deref(),
        Some("RUN_COMPLETED" | "RUN_FAILED" | "RUN_CANCELED")
    )
}

/// A stream cut off mid-way, as a client error that may be retried.
pub fn cut(client: &Client, error: &std::io::Error) -> ClientError {
    ClientError::Unreachable {
        addr: client.addr().to_owned(),
        reason: format!("the stream was cut off: {error}"),
    }
}

/// Says the daemon went away and waits for it to answer again.
pub fn lost(client: &Client, out: &Output) -> anyhow::Result<()> {
    out.note(&format!(
        "loopctl: lost loopd at {}; reconnecting…",
        client.addr()
    ));
    client.reconnect()?;
    out.note("loopctl: reconnected");
    Ok(())
}

/// `work`, tried again after the daemon comes back when it could not be reached.
pub fn retrying<T>(
    client: &Client,
    out: &Output,
    mut work: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    loop {
        match work() {
            Err(error)
                if error
                    .downcast_ref::<ClientError>()
                    .is_some_and(ClientError::is_transient) =>
            {
                lost(client, out)?;
            }
            result => return result,
        }
    }
}

/// `loopctl wait RUN`: exit 0 only for COMPLETED.
pub fn wait(client: &Client, text: &str, out: &Output) -> anyhow::Result<ExitCode> {
    let id = resolve(client, text)?;
    let (run, view) = wait_for_end(client, id, out)?;
    out.document(&json!({ "run": run }));
    out.line(&summary(&view));
    Ok(exit_status(&view))
}
