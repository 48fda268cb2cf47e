//! `loopctl inspect RUN`: the run, its steps, and its files.

use std::path::PathBuf;
use std::process::ExitCode;

use loop_client::blocking::Client;
use serde_json::json;

use crate::connect::named;
use crate::human::{self, ago, duration, money, size, tokens};
use crate::output::Output;
use crate::render::{one_line, run_dir_of, verdict, worktree};
use crate::run_ref;
use crate::table::{Cell, Colour, Paint, Table};

/// `loopctl inspect RUN`.
pub fn inspect(client: &Client, text: &str, out: &Output) -> anyhow::Result<ExitCode> {
    let view = run_ref::on_daemon(client, text)?;
    let id = view.id;
    let steps = client.steps(id).map_err(|error| named(error, id))?;
    let artifacts = client.artifacts(id).map_err(|error| named(error, id))?;
    let files: Vec<(String, u64)> = artifacts
        .iter()
        .map(|artifact| (artifact.name.clone(), artifact.bytes))
        .collect();
    let run_dir: Option<PathBuf> = run_dir_of(&steps);
    out.document(&json!({
        "run": view,
        "steps": steps,
        "artifacts": artifacts,
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
