//! The git the runtime runs: a command in a directory, its output or a clear error; `HEAD`
//! and branches read from the repository's files where they answer plainly ([`refs`]).

mod refs;

use std::path::Path;

/// The protocols a run's repository may be reached by, as `GIT_ALLOW_PROTOCOL` lists them for
/// every git the runtime runs (`repos/inputs.rs` refuses other URLs before git sees them). Here, with
/// the git that runs, so the repository code depends on git and not the other way round.
pub(crate) const ALLOWED_PROTOCOLS: &str = "https:ssh:git:file";

/// A git command that failed, with what it said.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`git {command}` in {dir} failed: {stderr}")]
pub struct GitError {
    pub command: String,
    pub dir: String,
    pub stderr: String,
}

/// Runs `git <args>` in `dir`; its trimmed stdout, or why it failed.
pub async fn run(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let error = |stderr: String| GitError {
        command: args.join(" "),
        dir: dir.display().to_string(),
        stderr,
    };
    let output = tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .env("GIT_TERMINAL_PROMPT", "0")
        // Only the protocols a run's repository may use: not `ext::` (a command), not
        // `fd::` (a descriptor of the daemon's), whatever a URL or a submodule says.
        .env("GIT_ALLOW_PROTOCOL", ALLOWED_PROTOCOLS)
        .output()
        .await
        .map_err(|e| error(e.to_string()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        return Err(error(if stderr.is_empty() { stdout } else { stderr }));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_owned())
}

/// Adds `pattern` to the repository's own ignore list (`info/exclude` in its common git dir,
/// shared by its worktrees) unless it is there: the tool's files stay out of the person's
/// `git status` and `git add -A` without touching a tracked `.gitignore`.
pub async fn exclude(repo: &Path, pattern: &str) -> Result<(), GitError> {
    let common = run(
        repo,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
    )
    .await?;
    let file = Path::new(&common).join("info/exclude");
    let error = |e: std::io::Error| GitError {
        command: "info/exclude".to_owned(),
        dir: file.display().to_string(),
        stderr: e.to_string(),
    };
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    if text.lines().any(|line| line.trim() == pattern) {
        return Ok(());
    }
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(error)?;
    }
    let separator = if text.is_empty() || text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    let added = format!("{text}{separator}# loop's run logs\n{pattern}\n");
    std::fs::write(&file, added).map_err(error)
}

/// The run that owns `branch`: `git config branch.<branch>.loop-run`, written when a run
/// creates or takes the branch, so that a later run never mistakes it for its own.
fn owner_key(branch: &str) -> String {
    format!("branch.{branch}.loop-run")
}

/// Records `run` as the owner of `branch`.
pub async fn set_branch_owner(repo: &Path, branch: &str, run: &str) -> Result<(), GitError> {
    self::run(repo, &["config", &owner_key(branch), run])
        .await
        .map(drop)
}

/// The run recorded as the owner of `branch`, if any.
pub async fn branch_owner(repo: &Path, branch: &str) -> Option<String> {
    optional(repo, &["config", "--get", &owner_key(branch)]).await
}

/// The branch whose recorded owner is `run`, if any.
pub async fn owned_branch(repo: &Path, run: &str) -> Option<String> {
    let text = self::run(repo, &["config", "--get-regexp", r"^branch\..*\.loop-run$"])
        .await
        .ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (value == run).then(|| {
            key.strip_prefix("branch.")?
                .strip_suffix(".loop-run")
                .map(str::to_owned)
        })?
    })
}

async fn optional(dir: &Path, args: &[&str]) -> Option<String> {
    run(dir, args).await.ok().filter(|text| !text.is_empty())
}

/// The branch checked out in `dir`; `None` outside a repository or on a detached `HEAD`.
/// The main repository of the one `dir` is in (its worktrees share it).
pub async fn main_repo(dir: &Path) -> Result<std::path::PathBuf, GitError> {
    let common = run(
        dir,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
    )
    .await?;
    let common = std::path::PathBuf::from(common);
    Ok(common.parent().map(Path::to_path_buf).unwrap_or(common))
}

pub async fn current_branch(dir: &Path) -> Option<String> {
    optional(dir, &["symbolic-ref", "--quiet", "--short", "HEAD"]).await
}

/// The commit `HEAD` points at; `None` outside a repository or before the first commit.
///
/// Read from the repository's files (no process: this is asked around every step); git is
/// run only when the files do not answer plainly.
pub async fn head(dir: &Path) -> Option<String> {
    match refs::head(dir) {
        refs::Resolved::Commit(commit) => Some(commit),
        refs::Resolved::Missing => None,
        refs::Resolved::Ask => optional(dir, &["rev-parse", "--verify", "--quiet", "HEAD"]).await,
    }
}

/// The commit a branch points at, if the branch exists (read as [`head`] is).
pub async fn branch_commit(dir: &Path, branch: &str) -> Option<String> {
    match refs::branch(dir, branch) {
        refs::Resolved::Commit(commit) => return Some(commit),
        refs::Resolved::Missing => return None,
        refs::Resolved::Ask => {}
    }
    optional(
        dir,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}"),
        ],
    )
    .await
}

/// A worktree as `git worktree list --porcelain` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Worktree {
    pub path: String,
    pub branch: Option<String>,
}

pub async fn worktrees(dir: &Path) -> Result<Vec<Worktree>, GitError> {
    let text = run(dir, &["worktree", "list", "--porcelain"]).await?;
    let mut list = Vec::new();
    let mut current: Option<Worktree> = None;
    for line in text.lines() {
        if let Some(path) = line.strip_prefix("worktree ") {
            list.extend(current.take());
            current = Some(Worktree {
                path: path.to_owned(),
                branch: None,
            });
        } else if let Some(branch) = line.strip_prefix("branch refs/heads/")
            && let Some(worktree) = current.as_mut()
        {
            worktree.branch = Some(branch.to_owned());
        }
    }
    list.extend(current);
    Ok(list)
}
