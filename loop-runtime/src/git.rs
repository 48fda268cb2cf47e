//! The little git the runtime reads: the current branch and `HEAD`.

use std::path::Path;

async fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// The branch checked out in `dir`; `None` outside a repository or on a detached `HEAD`.
pub async fn current_branch(dir: &Path) -> Option<String> {
    git(dir, &["symbolic-ref", "--quiet", "--short", "HEAD"]).await
}

/// The commit `HEAD` points at; `None` outside a repository or before the first commit.
pub async fn head(dir: &Path) -> Option<String> {
    git(dir, &["rev-parse", "--verify", "--quiet", "HEAD"]).await
}
