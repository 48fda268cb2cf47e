//! `loopctl inspect RUN`: the run, its steps, and its files.

use std::path::PathBuf;
use std::process::ExitCode;

use loop_api::insight::ExperimentReport;
use loop_client::blocking::Client;
use loop_core::event::ExitReason;
use loop_core::experiment::figure;
use loop_core::projection::StepView;

use crate::connect::named;
use crate::human::one_line;
use crate::human::{self, ago, duration, money, size, tokens};
use crate::output::Output;
use crate::render::{run_dir_of, verdict, worktree};
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
    // An experiment's report answers only for a run in experiment mode: the same question the
    // dashboard asks before it shows the experiment's tab.
    let experiment = client.experiment(id).ok();
    out.document(&crate::documents::Inspection {
        run: &view,
        steps: &steps,
        artifacts: &artifacts,
        run_dir: run_dir.as_deref(),
        experiment: experiment.as_ref().map(|report| &report.summary),
    });
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
    ];
    // An experiment has no plan: its iterations are ideas measured, not tasks.
    if experiment.is_none() {
        facts.push(("plan", view.plan_path.clone()));
    }
    facts.extend([
        (
            "created",
            format!("{} ({})", view.created_at, ago(view.created_ms, now)),
        ),
        (
            "updated",
            format!("{} ({})", view.updated_at, ago(view.updated_ms, now)),
        ),
        ("worktree", worktree(&view)),
    ]);
    if let Some(report) = &experiment {
        facts.extend(crate::cmd::experiment::facts(report));
        if let Some(exit) = view.exit_reason.filter(|_| view.status.is_terminal()) {
            facts.push(("stopped", experiment_stop(exit, report)));
        }
    }
    if let Some(waiting) = &view.waiting {
        facts.push((
            "waiting",
            colour.paint(
                Paint::Yellow,
                &crate::live::lines::wait_line(waiting, now).text,
            ),
        ));
    }
    if view.pause_requested {
        facts.push((
            "pause",
            format!(
                "asked for: it pauses once its current step ends (`loopctl pause {} --now` \
                 stops it now)",
                view.name
            ),
        ));
    }
    let tree = &view.worktree;
    match (&tree.merge_target_branch, &view.merge) {
        (Some(target), None) => facts.push((
            "merge",
            format!(
                "{} into {target} on completion (not tried yet)",
                tree.merge_strategy
            ),
        )),
        (target, Some(merge)) if merge.landed => facts.push((
            "merge",
            colour.paint(
                Paint::Green,
                &format!(
                    "landed in {} as {}",
                    target.as_deref().unwrap_or("its target"),
                    merge.commit.as_deref().unwrap_or("?")
                ),
            ),
        )),
        (target, Some(merge)) => facts.push((
            "merge",
            colour.paint(
                Paint::Red,
                &format!(
                    "not landed in {}: {}; `loopctl merge {}` tries again",
                    target.as_deref().unwrap_or("its target"),
                    one_line(merge.problem.as_deref().unwrap_or("no reason given"), 160),
                    view.name
                ),
            ),
        )),
        (None, None) => {}
    }
    let (input, output) = steps
        .iter()
        .filter_map(|s| s.tokens)
        .fold((0, 0), |(i, o), t| (i + t.input, o + t.output));
    let work = match &experiment {
        Some(_) => String::new(),
        None => format!(" · tasks {}/{}", view.tasks_done, view.tasks_total),
    };
    facts.push((
        "progress",
        format!(
            "iteration {}{work} · tokens {} in, {} out",
            view.iteration,
            tokens(input),
            tokens(output)
        ),
    ));
    let costs = &view.costs;
    facts.push((
        "cost",
        format!(
            "{} (steps {}, naming {}, postmortem {})",
            money(view.cost_usd),
            money(costs.steps_usd),
            money(costs.naming_usd),
            money(costs.postmortem_usd)
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
        let notes: Vec<String> = steps
            .iter()
            .enumerate()
            .filter_map(|(n, step)| agent_note(step).map(|note| format!("  #{}  {note}", n + 1)))
            .collect();
        if !notes.is_empty() {
            out.line("");
            out.line("what the agent said of its calls");
            for note in notes {
                out.agent_line(&note);
            }
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

/// Why an experiment stopped, in words.
fn experiment_stop(exit: ExitReason, report: &ExperimentReport) -> String {
    let summary = &report.summary;
    let why = match exit {
        ExitReason::TargetReached => format!(
            "the best reached the target{}",
            report
                .table
                .target
                .map(|target| format!(" {}", figure(target)))
                .unwrap_or_default()
        ),
        ExitReason::PatienceExhausted => "too many iterations in a row kept nothing".to_owned(),
        ExitReason::IterationsExhausted => format!("its {} iterations ran", summary.iterations),
        ExitReason::BudgetExhausted => "its budget (max_cost_usd) was spent".to_owned(),
        other => format!("it ended ({})", other.as_str()),
    };
    format!("{} — {why}", exit.as_str())
}

/// Session, models, turns, API time, denials, calls and the rate-limit window of a step's
/// calls, on one line; `None` when the agent said none of it.
fn agent_note(step: &StepView) -> Option<String> {
    let agent = step.agent.as_ref()?;
    let mut parts: Vec<String> = Vec::new();
    if let Some(session) = &agent.session_id {
        let resumed = if step.resumes_session.is_some() {
            " (resumed)"
        } else {
            ""
        };
        parts.push(format!("session {session}{resumed}"));
    }
    if !agent.models.is_empty() {
        parts.push(agent.models.join(", "));
    }
    if let Some(calls) = agent.calls.filter(|calls| *calls > 1) {
        parts.push(format!("{calls} calls"));
    }
    if let Some(turns) = agent.num_turns {
        parts.push(format!("{turns} turns"));
    }
    if let Some(ms) = agent.duration_api_ms {
        parts.push(format!("{} in the API", duration(ms)));
    }
    if let Some(denials) = agent.permission_denials.filter(|n| *n > 0) {
        parts.push(format!("{denials} tool uses denied"));
    }
    if let Some(tokens) = step.tokens.filter(|t| t.cached > 0 || t.reasoning > 0) {
        parts.push(format!(
            "{} of the input cached, {} of the output reasoning",
            self::tokens(tokens.cached),
            self::tokens(tokens.reasoning)
        ));
    }
    if let Some(limit) = &agent.rate_limit {
        let mut window = format!(
            "{} window {}",
            limit.window.as_deref().unwrap_or("rate-limit"),
            limit.status
        );
        if let Some(used) = limit.utilization {
            window.push_str(&format!(", {:.0}% used", used * 100.0));
        }
        if limit.overage_in_use == Some(true) {
            window.push_str(", served from overage");
        }
        parts.push(window);
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}
