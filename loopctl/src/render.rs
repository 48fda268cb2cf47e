//! How a run reads for people: its verdict, a closing summary, short ids, where it works.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use loop_core::RunStatus;
use loop_core::event::Provider;
use loop_core::projection::{RunView, StepView};

use crate::human::{duration, money, one_line};

/// Each id cut to the shortest prefix (8 characters at least) that no other listed id shares.
pub fn short_ids(views: &[RunView]) -> Vec<String> {
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

/// The run directory, as the steps' files show it.
pub fn run_dir_of(steps: &[StepView]) -> Option<PathBuf> {
    steps
        .iter()
        .flat_map(|s| [s.output_path.as_deref(), s.prompt_path.as_deref()])
        .flatten()
        .map(Path::new)
        .find(|p| p.is_absolute())
        .and_then(Path::parent)
        .map(Path::to_path_buf)
}

pub fn worktree(view: &RunView) -> String {
    let tree = &view.worktree;
    match (&tree.worktree_path, &tree.provider) {
        (_, Some(provider)) if !Provider::parse(provider).has_worktree() => {
            "none (works in the workspace)".to_owned()
        }
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
            let merge = match &view.merge {
                Some(merge) if merge.landed => format!(
                    ", merged into {}",
                    view.worktree
                        .merge_target_branch
                        .as_deref()
                        .unwrap_or("its target")
                ),
                Some(_) => ", merge not landed".to_owned(),
                None => String::new(),
            };
            format!("{} ({}){merge}", view.status, exit.as_str())
        }
        _ => view.status.to_string(),
    }
}

/// A closing line for a run that ended.
pub fn summary(view: &RunView) -> String {
    // The postmortem's analyses are paid too: a cost read before they end says so.
    let more = if view.postmortem.as_deref() == Some("running") {
        " so far (its postmortem is running)"
    } else {
        ""
    };
    // A run with no tasks (an experiment: its iterations are ideas measured) has none to count.
    let tasks = match view.tasks_total {
        0 => String::new(),
        total => format!("{}/{total} tasks, ", view.tasks_done),
    };
    format!(
        "run {} ({}) {}; {tasks}{}, {}, {}{more}",
        view.id,
        view.name,
        verdict(view),
        iterations(view.iteration),
        duration((view.updated_ms - view.created_ms).max(0) as u64),
        money(view.cost_usd)
    )
}

/// `1 iteration`, `3 iterations`.
pub fn iterations(count: u32) -> String {
    match count {
        1 => "1 iteration".to_owned(),
        n => format!("{n} iterations"),
    }
}

/// What a run waits for now, or where its merge stands: `⏸ usage limit until 14:05:30 UTC (2h
/// left)`, `merged into main`, `merge not landed`; empty when there is nothing to say.
pub fn state_note(view: &RunView, now_ms: i64) -> String {
    if let Some(waiting) = &view.waiting {
        return format!(
            "⏸ {}{}",
            crate::live::lines::wait_label(waiting.code),
            crate::live::lines::until(waiting, now_ms)
        );
    }
    if view.pause_requested {
        return "pausing after its step".to_owned();
    }
    match &view.merge {
        Some(merge) if merge.landed => format!(
            "merged into {}",
            view.worktree
                .merge_target_branch
                .as_deref()
                .unwrap_or("its target")
        ),
        Some(_) => "merge not landed".to_owned(),
        None => String::new(),
    }
}

/// The exit status of a COMPLETED run whose merge on completion did not land.
pub const MERGE_NOT_LANDED: u8 = 3;

/// 0 for a COMPLETED run (whose merge landed, when it had one), [`MERGE_NOT_LANDED`] for a
/// COMPLETED run whose merge did not, 1 for any other end.
pub fn exit_status(view: &RunView) -> ExitCode {
    match view.status {
        RunStatus::Completed if merge_not_landed(view) => ExitCode::from(MERGE_NOT_LANDED),
        RunStatus::Completed => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}

/// Whether the run's last merge was tried and did not land.
pub fn merge_not_landed(view: &RunView) -> bool {
    view.merge.as_ref().is_some_and(|merge| !merge.landed)
}

/// What to run next after a run ended the way `view` says, for a person reading the end of a
/// followed or waited-for run; nothing when nothing is to be done.
pub fn closing(view: &RunView) -> Vec<String> {
    let name = &view.name;
    match view.status {
        RunStatus::Completed if merge_not_landed(view) => {
            let target = view
                .worktree
                .merge_target_branch
                .as_deref()
                .unwrap_or("its target");
            let problem = view
                .merge
                .as_ref()
                .and_then(|merge| merge.problem.as_deref())
                .unwrap_or("no reason given");
            vec![
                format!(
                    "the work is done and verified, but its merge into {target} did not land: {}",
                    one_line(problem, 200)
                ),
                format!(
                    "next: fix that (a checkout with changes: commit or stash them), then \
                     `loopctl merge {name}`; `loopctl diff {name}` shows the work"
                ),
            ]
        }
        RunStatus::Failed => vec![format!(
            "next: `loopctl inspect {name}` shows why; `loopctl retry {name}` runs it again from \
             where it stopped"
        )],
        RunStatus::Canceled => vec![format!("next: `loopctl retry {name}` runs it again")],
        _ => Vec::new(),
    }
}
