//! `loopctl experiment RUN`: an experiment's table — each iteration's idea, its metric, its
//! effect against the best with the interval, and whether it was kept — with the starting
//! point, the best and any drift of the machine above it. `--json` prints the daemon's
//! document (`{"rows": [...], "summary": {...}, ...}`). From the daemon, or from a log file.

use std::process::ExitCode;

use loop_api::insight::ExperimentReport;
use loop_core::experiment::prompt::short;
use loop_core::experiment::{figure, interval_text, percent};
use loop_core::projection::ExperimentRow;

use crate::connect::named;
use crate::log::{embedded, open_existing};
use crate::output::Output;
use crate::run_ref;
use crate::source::Source;
use crate::table::{Cell, Colour, Paint, Table};

/// `loopctl experiment RUN [--db PATH]`.
pub fn run(source: Source, text: &str, out: &Output) -> anyhow::Result<ExitCode> {
    let report = match source {
        Source::Daemon(client) => {
            let id = run_ref::on_daemon(&client, text)?.id;
            client.experiment(id).map_err(|error| named(error, id))?
        }
        Source::Log(db) => {
            let id = run_ref::in_log(&open_existing(&db)?, text)?;
            embedded(&db, async |runtime| Ok(runtime.experiment(id).await?))?
        }
    };
    out.document(&serde_json::to_value(&report)?);
    if out.json {
        return Ok(ExitCode::SUCCESS);
    }
    for line in lines(&report, Colour::stdout()) {
        out.line(&line);
    }
    Ok(ExitCode::SUCCESS)
}

/// The experiment for people: a head of facts, then the table.
fn lines(report: &ExperimentReport, colour: Colour) -> Vec<String> {
    let mut lines: Vec<String> = facts(report)
        .into_iter()
        .map(|(label, text)| format!("{label:<12}{text}"))
        .collect();
    lines.push(String::new());
    let mut grid = Table::new(&[
        ">iter", "commit", ">metric", ">effect", "interval", "kept", "idea",
    ]);
    for r in &report.table.rows {
        grid.row(cells(r));
    }
    lines.extend(grid.lines(colour));
    lines
}

/// Where an experiment stands, as labelled facts: its goal and keep rule, the start, the best,
/// the iterations decided, and any drift of the machine (also `loopctl inspect`'s).
pub fn facts(report: &ExperimentReport) -> Vec<(&'static str, String)> {
    let table = &report.table;
    let summary = &report.summary;
    let mut facts = vec![(
        "goal",
        format!(
            "{} {} (keep: better by more than {} at {}% confidence{})",
            table.goal,
            table.metric,
            percent(table.min_effect).trim_start_matches('+'),
            figure(table.confidence * 100.0),
            table
                .target
                .map(|target| format!("; target {}", figure(target)))
                .unwrap_or_default()
        ),
    )];
    if let (Some(start), Some(commit)) = (summary.baseline, &summary.baseline_commit) {
        facts.push(("start", format!("{} at {}", figure(start), short(commit))));
    }
    if let (Some(best), Some(commit)) = (summary.best, &summary.best_commit) {
        let change = summary
            .change
            .map(|change| format!(", {} against the start", percent(change)))
            .unwrap_or_default();
        let at = summary
            .best_iteration
            .map(|iteration| format!(" (iteration {iteration})"))
            .unwrap_or_default();
        facts.push((
            "best",
            format!("{} at {}{at}{change}", figure(best), short(commit)),
        ));
    }
    facts.push((
        "iterations",
        format!(
            "{} decided: {} kept, {} discarded",
            summary.iterations, summary.kept, summary.discarded
        ),
    ));
    if let Some(drift) = &summary.drift {
        let note = if drift.beyond_noise {
            " — beyond the noise: the machine measures differently now"
        } else {
            " (within the noise)"
        };
        facts.push((
            "drift",
            format!(
                "the start measures {} {}{note}",
                percent(drift.effect),
                interval_text(drift.interval)
            ),
        ));
    }
    facts
}

fn cells(row: &ExperimentRow) -> Vec<Cell> {
    let kept = if row.iteration == 0 {
        Cell::painted("start", Paint::Dim)
    } else if row.kept {
        Cell::painted("kept", Paint::Green)
    } else {
        Cell::painted(format!("no: {}", row.reason), Paint::Red)
    };
    vec![
        row.iteration.to_string().into(),
        row.commit.as_deref().map(short).unwrap_or("-").into(),
        row.metric
            .map(figure)
            .unwrap_or_else(|| "-".to_owned())
            .into(),
        row.effect
            .map(percent)
            .unwrap_or_else(|| "-".to_owned())
            .into(),
        row.interval
            .map(interval_text)
            .unwrap_or_else(|| "-".to_owned())
            .into(),
        kept,
        row.idea.clone().unwrap_or_default().into(),
    ]
}
