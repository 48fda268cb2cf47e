//! `loopctl init`: a commented `.loop/config` with every key and its default.

use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::output::Output;
use crate::workspace;

pub fn run(out: &Output) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let root = workspace::root_of(&cwd);
    let path = root.join(".loop/config");
    if path.exists() {
        bail!(
            "{} already exists; edit it, or remove it to start again",
            path.display()
        );
    }
    std::fs::create_dir_all(root.join(".loop"))?;
    std::fs::write(&path, loop_core::config::commented_template())
        .with_context(|| format!("cannot write {}", path.display()))?;
    out.line(&format!("wrote {}", path.display()));
    out.document(&serde_json::json!({ "path": path }));
    Ok(ExitCode::SUCCESS)
}
