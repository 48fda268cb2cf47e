//! `loopctl list`: runs, newest first, a page at a time from the daemon.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use loop_api::runs::RunsPage;
use loop_client::ListRuns;
use loop_client::blocking::Client;
use loop_core::RunStatus;
use loop_core::projection::RunView;

use crate::human::{self, ago, money};
use crate::output::Output;
use crate::render::{short_ids, state_note};
use crate::table::{Cell, Colour, Paint, Table};
use crate::workspace;

/// Runs per page: the most the daemon gives at once.
const PAGE: usize = 1000;

/// Up to `limit` runs (every run for 0), newest first, following the daemon's pages; and the
/// cursor of the next page when more were left.
fn fetch(
    client: &Client,
    status: Option<RunStatus>,
    workspace_root: Option<&Path>,
    limit: usize,
) -> anyhow::Result<(Vec<RunView>, Option<loop_core::RunId>)> {
    let mut runs: Vec<RunView> = Vec::new();
    let mut query = ListRuns {
        status,
        workspace_root: workspace_root.map(|root| root.to_string_lossy().into_owned()),
        ..ListRuns::default()
    };
    loop {
        query.limit = Some(match limit {
            0 => PAGE,
            n => (n - runs.len()).min(PAGE),
        });
        let page = client.list_runs(&query)?;
        runs.extend(page.runs);
        let full = limit != 0 && runs.len() >= limit;
        match page.next {
            Some(next) if !full => query.before = Some(next),
            next => return Ok((runs, next)),
        }
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
    let status = status
        .map(|text| text.parse::<RunStatus>().map_err(anyhow::Error::msg))
        .transpose()?;
    let root = if this_workspace {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        Some(workspace::root_of(&cwd))
    } else {
        None
    };
    let (views, next) = fetch(client, status, root.as_deref(), limit)?;
    if out.json {
        out.document(&RunsPage { runs: views, next });
        return Ok(ExitCode::SUCCESS);
    }
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
        "NOTE",
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
            state_note(view, now).into(),
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
