//! Review actions on a finished run, through the daemon: `diff`, `merge`, `scrap`, `pr`.

use std::process::ExitCode;

use loop_api::review::{DiffEnvelope, MergeEnvelope, PullRequestEnvelope, ScrapEnvelope};
use loop_api::review::{MergeBody, PullRequestBody};
use loop_client::blocking::Client;

use crate::connect::named;
use crate::output::Output;
use crate::run_ref;
use crate::table::{Colour, Paint};

/// `loopctl diff RUN`: the commits and file stats, then the patches.
pub fn diff(client: &Client, run: &str, out: &Output) -> anyhow::Result<ExitCode> {
    let id = run_ref::on_daemon(client, run)?.id;
    let diff = client.diff(id).map_err(|error| named(error, id))?;
    let envelope = DiffEnvelope { diff };
    out.document(&envelope);
    let diff = envelope.diff;
    if out.json {
        return Ok(ExitCode::SUCCESS);
    }
    let colour = Colour::stdout();
    let (commits, files) = (&diff.commits, &diff.files);
    out.line(&format!(
        "run {id}: {} against {}: {} commit{}, {} file{}, {} {}",
        diff.run_branch,
        diff.base_branch,
        commits.len(),
        if commits.len() == 1 { "" } else { "s" },
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        colour.paint(Paint::Green, &format!("+{}", diff.additions)),
        colour.paint(Paint::Red, &format!("-{}", diff.deletions)),
    ));
    for commit in commits {
        let hash: String = commit.hash.chars().take(10).collect();
        let day: String = commit.authored_at.chars().take(10).collect();
        out.line(&format!(
            "  {} {} ({}, {day})",
            colour.paint(Paint::Yellow, &hash),
            commit.subject,
            commit.author,
        ));
    }
    for file in files {
        let renamed = file
            .old_path
            .as_deref()
            .map(|old| format!("{old} → "))
            .unwrap_or_default();
        let stat = if file.binary {
            "binary".to_owned()
        } else {
            format!("+{} -{}", file.additions, file.deletions)
        };
        out.line(&format!("  {stat:>12}  {renamed}{}", file.path));
    }
    for file in files {
        let Some(patch) = &file.patch else {
            continue;
        };
        out.line("");
        for line in patch.lines() {
            let paint = match line.as_bytes().first() {
                _ if line.starts_with("+++") || line.starts_with("---") => Some(Paint::Bold),
                Some(b'+') => Some(Paint::Green),
                Some(b'-') => Some(Paint::Red),
                Some(b'@') => Some(Paint::Cyan),
                _ if line.starts_with("diff --git") => Some(Paint::Bold),
                _ => None,
            };
            out.line(&match paint {
                Some(paint) => colour.paint(paint, line),
                None => line.to_owned(),
            });
        }
    }
    if diff.truncated {
        out.note("loopctl: some patches were left out (over 8 MiB); `git diff` in the workspace has them all");
    }
    Ok(ExitCode::SUCCESS)
}

/// `loopctl merge RUN [--strategy S] [--target BRANCH]`.
pub fn merge(
    client: &Client,
    run: &str,
    strategy: Option<&str>,
    target: Option<&str>,
    out: &Output,
) -> anyhow::Result<ExitCode> {
    let id = run_ref::on_daemon(client, run)?.id;
    let body = MergeBody {
        strategy: strategy.map(str::to_owned),
        target: target.map(str::to_owned),
    };
    let merged = client.merge(id, &body).map_err(|error| named(error, id))?;
    let envelope = MergeEnvelope { merge: merged };
    out.document(&envelope);
    let merged = envelope.merge;
    out.line(&format!(
        "merged run {id} into {} as {} ({}); the merge log is {}",
        merged.target, merged.commit, merged.strategy, merged.log_path,
    ));
    Ok(ExitCode::SUCCESS)
}

/// `loopctl scrap RUN`.
pub fn scrap(client: &Client, run: &str, out: &Output) -> anyhow::Result<ExitCode> {
    let id = run_ref::on_daemon(client, run)?.id;
    let scrapped = client.scrap(id).map_err(|error| named(error, id))?;
    let envelope = ScrapEnvelope { scrap: scrapped };
    out.document(&envelope);
    let scrapped = envelope.scrap;
    let mut said = vec![format!("scrapped run {id}")];
    if let Some(path) = &scrapped.worktree_removed {
        said.push(format!("removed the worktree {path}"));
    }
    match (&scrapped.branch_deleted, &scrapped.branch_commit) {
        (Some(branch), Some(commit)) => said.push(format!(
            "deleted the branch {branch} (`git branch {branch} {commit}` brings it back)"
        )),
        (Some(branch), None) => said.push(format!("deleted the branch {branch}")),
        _ => {}
    }
    out.line(&said.join("; "));
    Ok(ExitCode::SUCCESS)
}

/// `loopctl pr RUN [--title T] [--body B]`: the pull request's address on stdout.
pub fn pr(
    client: &Client,
    run: &str,
    title: Option<&str>,
    body: Option<&str>,
    out: &Output,
) -> anyhow::Result<ExitCode> {
    let id = run_ref::on_daemon(client, run)?.id;
    let request = PullRequestBody {
        title: title.map(str::to_owned),
        body: body.map(str::to_owned),
    };
    let pr = client
        .create_pr(id, &request)
        .map_err(|error| named(error, id))?;
    let envelope = PullRequestEnvelope { pull_request: pr };
    out.document(&envelope);
    let pr = envelope.pull_request;
    out.note(&format!(
        "pushed {} to {} and opened a pull request into {}",
        pr.branch, pr.remote, pr.base
    ));
    out.line(&pr.url);
    Ok(ExitCode::SUCCESS)
}
