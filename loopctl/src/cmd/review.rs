//! Review actions on a finished run, through the daemon: `diff`, `merge`, `scrap`, `pr`.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::client::Client;
use crate::cmd::runs;
use crate::output::Output;
use crate::table::{Colour, Paint};

/// The part of an answer under `key` (`{"diff": {...}}`), or the whole answer when it is bare.
fn part<'a>(answer: &'a Value, key: &str) -> &'a Value {
    answer.get(key).unwrap_or(answer)
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("")
}

/// `loopctl diff RUN`: the commits and file stats, then the patches.
pub fn diff(client: &Client, run: &str, out: &Output) -> anyhow::Result<ExitCode> {
    let id = runs::resolve(client, run)?;
    let answer = client
        .get(&format!("/runs/{id}/diff"))
        .map_err(|error| runs::named(error, id))?;
    out.document(&answer);
    if out.json {
        return Ok(ExitCode::SUCCESS);
    }
    let diff = part(&answer, "diff");
    let colour = Colour::stdout();
    let commits = diff["commits"].as_array().cloned().unwrap_or_default();
    let files = diff["files"].as_array().cloned().unwrap_or_default();
    out.line(&format!(
        "run {id}: {} against {}: {} commit{}, {} file{}, {} {}",
        text(diff, "run_branch"),
        text(diff, "base_branch"),
        commits.len(),
        if commits.len() == 1 { "" } else { "s" },
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        colour.paint(Paint::Green, &format!("+{}", diff["additions"])),
        colour.paint(Paint::Red, &format!("-{}", diff["deletions"])),
    ));
    for commit in &commits {
        let hash: String = text(commit, "hash").chars().take(10).collect();
        let day: String = text(commit, "authored_at").chars().take(10).collect();
        out.line(&format!(
            "  {} {} ({}, {day})",
            colour.paint(Paint::Yellow, &hash),
            text(commit, "subject"),
            text(commit, "author"),
        ));
    }
    for file in &files {
        let renamed = file["old_path"]
            .as_str()
            .map(|old| format!("{old} → "))
            .unwrap_or_default();
        let stat = if file["binary"].as_bool() == Some(true) {
            "binary".to_owned()
        } else {
            format!("+{} -{}", file["additions"], file["deletions"])
        };
        out.line(&format!("  {stat:>12}  {renamed}{}", text(file, "path")));
    }
    for file in &files {
        let Some(patch) = file["patch"].as_str() else {
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
    if diff["truncated"].as_bool() == Some(true) {
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
    let id = runs::resolve(client, run)?;
    let mut body = json!({});
    if let Some(strategy) = strategy {
        body["strategy"] = json!(strategy);
    }
    if let Some(target) = target {
        body["target"] = json!(target);
    }
    let answer = client
        .post(&format!("/runs/{id}/merge"), &body)
        .map_err(|error| runs::named(error, id))?;
    out.document(&answer);
    let merged = part(&answer, "merge");
    out.line(&format!(
        "merged run {id} into {} as {} ({}); the merge log is {}",
        text(merged, "target"),
        text(merged, "commit"),
        text(merged, "strategy"),
        text(merged, "log_path"),
    ));
    Ok(ExitCode::SUCCESS)
}

/// `loopctl scrap RUN`.
pub fn scrap(client: &Client, run: &str, out: &Output) -> anyhow::Result<ExitCode> {
    let id = runs::resolve(client, run)?;
    let answer = client
        .post(&format!("/runs/{id}/scrap"), &json!({}))
        .map_err(|error| runs::named(error, id))?;
    out.document(&answer);
    let scrapped = part(&answer, "scrap");
    let mut said = vec![format!("scrapped run {id}")];
    if let Some(path) = scrapped["worktree_removed"].as_str() {
        said.push(format!("removed the worktree {path}"));
    }
    match (
        scrapped["branch_deleted"].as_str(),
        scrapped["branch_commit"].as_str(),
    ) {
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
    let id = runs::resolve(client, run)?;
    let mut request = json!({});
    if let Some(title) = title {
        request["title"] = json!(title);
    }
    if let Some(body) = body {
        request["body"] = json!(body);
    }
    let answer = client
        .post(&format!("/runs/{id}/create-pr"), &request)
        .map_err(|error| runs::named(error, id))?;
    out.document(&answer);
    let pr = part(&answer, "pull_request");
    out.note(&format!(
        "pushed {} to {} and opened a pull request into {}",
        text(pr, "branch"),
        text(pr, "remote"),
        text(pr, "base")
    ));
    out.line(text(pr, "url"));
    Ok(ExitCode::SUCCESS)
}
