//! `loopctl demo`: the whole loop on a scratch repository with the built-in demo agent, so a
//! newcomer sees it work with nothing installed but git.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use loop_core::config::Layer;
use loop_runtime::RunRequest;

use crate::cmd::follow;
use crate::output::Output;

const SPEC: &str = "# Greeting\n\n**Status:** Draft\n**Last Updated:** 2026-11-25\n\n\
A tiny project for the loop demo: three notes, one per task, each committed on its own.\n";

const PLAN: &str = "# Greeting plan\n\n## Tasks\n\n\
- [ ] write the hello note\n\
- [ ] write the thanks note\n\
- [ ] write the goodbye note\n\n\
## Verification\n\n\
- [ ] read the notes (a person's check: it does not block completion)\n";

const CONFIG: &str = "# The demo's configuration: the built-in demo agent, a git worktree per run,\n\
# a review after each task, and one verification command.\n\
agent=demo\n\
worktree_provider=git\n\
verify_cmds=test -d demo\n\
iterations=10\n\
postmortem=false\n";

pub fn run(dir: Option<PathBuf>, out: &Output) -> anyhow::Result<ExitCode> {
    let root = match dir {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("loop-demo-{}", std::process::id())),
    };
    if root.exists() && std::fs::read_dir(&root)?.next().is_some() {
        bail!(
            "{} is not empty: pass an empty or new directory with --dir",
            root.display()
        );
    }
    let repo = root.join("greeting");
    scaffold(&repo)?;
    out.note(&format!("demo repository: {}", repo.display()));

    let data_dir = root.join("data");
    std::fs::create_dir_all(&data_dir)?;
    let db = data_dir.join("loopd.db");
    let request = RunRequest {
        repo_url: None,
        workspace_root: repo.clone(),
        spec_path: "specs/greeting.md".to_owned(),
        plan_path: None,
        name: Some("greeting-demo".to_owned()),
        config: Layer::new(),
        config_file: None,
    };
    let follow::Followed::Ended(view) = follow::run_in_process(request, &db, &data_dir, out)?
    else {
        return Ok(ExitCode::from(130));
    };

    // The demo's repository has no `.loop/config`: its runs go under the default log_dir.
    let run_dir = repo
        .join(loop_core::config::RunConfig::default().log_dir)
        .join(loop_core::layout::run_dir_name(view.id));
    // The document of `loopctl run --wait` (`{"run": Run}`), with where the demo's files are.
    out.document(&crate::documents::Demo {
        run: &view,
        repository: &repo,
        run_dir: &run_dir,
        event_log: &db,
    });
    out.line("");
    out.line(&format!("run directory   {}", run_dir.display()));
    out.line(&format!(
        "summary.json    {}",
        run_dir.join("summary.json").display()
    ));
    out.line(&format!(
        "report.tsv      {}",
        run_dir.join("report.tsv").display()
    ));
    if let (Some(path), Some(branch)) = (&view.worktree.worktree_path, &view.worktree.run_branch) {
        out.line(&format!("worktree        {path} (branch {branch})"));
    }
    out.line(&format!("event log       {}", db.display()));
    out.line("");
    out.line("Try it with a real agent, in your own repository:");
    out.line("  loopctl init                                   # .loop/config, a spec and a plan");
    out.line("  loopctl exec specs/<feature>.md --verify-cmd 'cargo test'");
    out.line(&format!(
        "  loopctl replay --db {}     # the log folds back to the same state",
        db.display()
    ));
    Ok(crate::render::exit_status(&view))
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let output = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .context("cannot run git: the demo needs git on PATH")?;
    if !output.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// A git repository with the spec, the plan and `.loop/config`, committed.
fn scaffold(repo: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(repo.join("specs/planning"))?;
    std::fs::create_dir_all(repo.join(".loop"))?;
    std::fs::write(repo.join("specs/greeting.md"), SPEC)?;
    std::fs::write(repo.join("specs/planning/greeting-plan.md"), PLAN)?;
    std::fs::write(repo.join(".loop/config"), CONFIG)?;
    std::fs::write(repo.join(".gitignore"), "logs/\n")?;
    git(repo, &["init", "-q", "-b", "main"])?;
    // A fresh machine may have no git identity; the demo's commits get their own.
    git(repo, &["config", "user.name", "loop demo"])?;
    git(repo, &["config", "user.email", "demo@loop.invalid"])?;
    git(repo, &["add", "-A"])?;
    git(repo, &["commit", "-q", "-m", "greeting: spec and plan"])?;
    Ok(())
}
