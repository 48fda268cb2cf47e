//! `loopctl stats`: figures across runs, folded from the event log, from the daemon or from a
//! log file (see `source.rs`): a table for people, the figures as one JSON document for scripts.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use loop_core::experiment::{figure, percent};
use loop_core::stats::{Stats, parse_age};
use loop_core::time::rfc3339_ms;

use crate::human::{duration, money};
use crate::log::embedded;
use crate::output::Output;
use crate::source::Source;
use crate::workspace;

/// `loopctl stats [--since AGE] [--workspace] [--db PATH]`; `since` as typed (`7d`), already
/// checked by the parser.
pub fn run(
    source: Source,
    since: Option<&str>,
    this_workspace: bool,
    out: &Output,
) -> anyhow::Result<ExitCode> {
    let workspace_root = if this_workspace {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        Some(workspace::root_of(&cwd).to_string_lossy().into_owned())
    } else {
        None
    };
    let stats = match source {
        // The daemon reads the age as the command line does (`parse_age`).
        Source::Daemon(client) => client.stats(since, workspace_root.as_deref())?,
        Source::Log(db) => {
            let since = since
                .map(parse_age)
                .transpose()
                .map_err(anyhow::Error::msg)?
                .map(|ms| Duration::from_millis(ms.max(0) as u64));
            embedded(&db, async |runtime| {
                Ok(runtime.stats(since, workspace_root).await?)
            })?
        }
    };
    out.document(&stats);
    for line in table(&stats) {
        out.line(&line);
    }
    Ok(ExitCode::SUCCESS)
}

/// The figures for people, one per line.
fn table(stats: &Stats) -> Vec<String> {
    let row = |label: &str, text: String| format!("{label:<16}{text}");
    let scope = match (&stats.since_ms, &stats.workspace_root) {
        (Some(since), Some(root)) => format!("runs created since {} in {root}", rfc3339_ms(*since)),
        (Some(since), None) => format!("runs created since {}", rfc3339_ms(*since)),
        (None, Some(root)) => format!("runs in {root}"),
        (None, None) => "every run".to_owned(),
    };
    let runs = &stats.runs;
    let mut lines = vec![
        row("scope", scope),
        row(
            "runs",
            format!(
                "{} ({} completed, {} failed, {} canceled, {} active)",
                runs.total, runs.completed, runs.failed, runs.canceled, runs.active
            ),
        ),
    ];
    if runs.total == 0 {
        return lines;
    }
    if !runs.by_exit_reason.is_empty() {
        lines.push(row("exit reasons", counts(&runs.by_exit_reason)));
    }
    lines.push(row(
        "iterations",
        match &stats.iterations_to_completion {
            Some(s) => format!(
                "to completion: mean {}, median {}, min {}, max {} ({} run{})",
                s.mean,
                s.median,
                s.min,
                s.max,
                s.count,
                if s.count == 1 { "" } else { "s" }
            ),
            None => "no run completed".to_owned(),
        },
    ));
    lines.push(row("tasks done", stats.tasks_done.to_string()));
    let per_task = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    lines.push(row(
        "time per task",
        format!(
            "{} ({} active in all)",
            per_task(stats.time_per_task_ms.map(duration)),
            duration(stats.active_ms)
        ),
    ));
    lines.push(row(
        "cost per task",
        format!(
            "{} ({} in all)",
            per_task(stats.cost_per_task_usd.map(money)),
            money(stats.cost_usd)
        ),
    ));
    let verification = &stats.verification;
    lines.push(row(
        "verification",
        match verification.pass_rate {
            Some(rate) => format!(
                "{} passed, {} failed: {:.1}% pass",
                verification.passed,
                verification.failed,
                rate * 100.0
            ),
            None => "none ran".to_owned(),
        },
    ));
    let watchdog = &stats.watchdog;
    lines.push(row(
        "watchdog",
        format!(
            "{}; {} rewrites, {} gave up",
            if watchdog.signals.is_empty() {
                "no signal".to_owned()
            } else {
                counts(&watchdog.signals)
            },
            watchdog.rewrites,
            watchdog.gave_up
        ),
    ));
    lines.push(row(
        "usage limits",
        format!(
            "{} waits, {} waited",
            stats.usage_limits.waits,
            duration(stats.usage_limits.waited_ms)
        ),
    ));
    lines.push(row("agent retries", stats.agent_retries.to_string()));
    let experiments = &stats.experiments;
    if !experiments.runs.is_empty() {
        lines.push(row(
            "experiments",
            format!(
                "{} runs, {} iterations: {} kept, {} discarded",
                experiments.runs.len(),
                experiments.iterations,
                experiments.kept,
                experiments.discarded
            ),
        ));
        for run in &experiments.runs {
            let value = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), figure);
            let change = run.change.map(percent).unwrap_or_default();
            lines.push(row(
                "",
                format!(
                    "{} {} {}: {} -> {} {change} ({} of {} kept)",
                    run.run_id,
                    run.goal,
                    run.metric,
                    value(run.baseline),
                    value(run.best),
                    run.kept,
                    run.iterations
                ),
            ));
        }
    }
    lines
}

/// `a 3, b 1`, largest first.
fn counts(map: &std::collections::BTreeMap<String, u64>) -> String {
    let mut pairs: Vec<(&String, &u64)> = map.iter().collect();
    pairs.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    pairs
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
