//! A run's diff against its base: the commits and, file by file, the changes.

use loop_core::RunId;
use loop_core::time::rfc3339_ms;

use super::{DiffCommit, FileDiff, RunBranch, RunDiff, invalid, view_of};
use crate::error::RuntimeError;
use crate::git;
use crate::services::Services;

/// Patches beyond this many bytes in all are left out of a [`RunDiff`] (the stats stay).
const MAX_PATCH_BYTES: usize = 8 << 20;
/// `git log` fields and records, separated by the ASCII unit and record separators.
const LOG_FORMAT: &str = "--format=%H%x1f%an%x1f%at%x1f%s%x1e";

/// The commits and changed files of a finished run's branch against its base, with stats
/// and patches, from two git calls (`git log base..run`, `git diff base...run`). A run still
/// working shows its work so far (what it has committed).
///
/// A read, not an event: looking at a diff appends nothing to the log and moves no time of the
/// run (its `updated_at`, hence its elapsed time, stays where its last fact put it).
pub(crate) async fn diff(services: &Services, run_id: RunId) -> Result<RunDiff, RuntimeError> {
    let view = view_of(services, run_id).await?;
    let branch = RunBranch::of(view)?;
    let dir = branch.workspace(&services.data_dir);
    let (base, mut run) = (&branch.base_branch, branch.run_branch.clone());
    // A run by URL that another node drove: its branch is on the remote, not in this node's
    // checkout (which may not exist yet either).
    if let Some(url) = crate::repos::url_of(&branch.view.workspace_root)
        && git::branch_commit(&dir, &run).await.is_none()
    {
        crate::repos::fetched(&services.data_dir, url)
            .await
            .map_err(|error| invalid(format!("diff of run {run_id}"), error.to_string()))?;
        run = format!("origin/{run}");
    }
    let run = &run;
    let gone = |error: git::GitError| {
        invalid(
            format!("diff of run {run_id}"),
            format!(
                "cannot compare {run} with {base} (was the branch scrapped or deleted?): \
                 {}",
                error.stderr
            ),
        )
    };
    let log = git::run(
        &dir,
        &[
            "log",
            "--no-color",
            "--no-show-signature",
            LOG_FORMAT,
            &format!("{base}..{run}"),
            "--",
        ],
    )
    .await
    .map_err(gone)?;
    let patch = patch_of(&dir, &format!("{base}...{run}"))
        .await
        .map_err(gone)?;
    let commits = parse_log(&log);
    let (files, truncated) = parse_diff(&patch);
    let diff = RunDiff {
        run_id,
        base_branch: branch.base_branch.clone(),
        run_branch: branch.run_branch.clone(),
        additions: files.iter().map(|f| f.additions).sum(),
        deletions: files.iter().map(|f| f.deletions).sum(),
        commits,
        files,
        truncated,
    };
    Ok(diff)
}

/// One commit of a run on its own, against its parent (`git diff <commit>^!`): an experiment's
/// candidate, kept on the run branch or discarded under `refs/loop/experiments/<run>/…`. Only a
/// commit one of those refs contains is shown, so the route reads no other history. A read: it
/// records nothing.
pub(crate) async fn commit_diff(
    services: &Services,
    run_id: RunId,
    commit: &str,
) -> Result<RunDiff, RuntimeError> {
    if !(7..=40).contains(&commit.len()) || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(
            format!("diff of run {run_id}"),
            format!("{commit:?} is not a commit hash (7 to 40 hex digits)"),
        ));
    }
    let view = view_of(services, run_id).await?;
    let branch = RunBranch::of(view)?;
    let dir = branch.workspace(&services.data_dir);
    let run = &branch.run_branch;
    let not_its = || {
        invalid(
            format!("diff of run {run_id}"),
            format!("{commit} is not a commit of the run's branch or of its experiment"),
        )
    };
    let holders = git::run(
        &dir,
        &[
            "for-each-ref",
            "--format=%(refname)",
            "--contains",
            commit,
            &format!("refs/heads/{run}"),
            &format!("refs/remotes/origin/{run}"),
            &format!("refs/loop/experiments/{run_id}/"),
        ],
    )
    .await
    .map_err(|_| not_its())?;
    if holders.trim().is_empty() {
        return Err(not_its());
    }
    let one = format!("{commit}^!");
    let log = git::run(
        &dir,
        &[
            "log",
            "--no-color",
            "--no-show-signature",
            LOG_FORMAT,
            "-1",
            commit,
            "--",
        ],
    )
    .await
    .map_err(|_| not_its())?;
    let patch = patch_of(&dir, &one).await.map_err(|_| not_its())?;
    let commits = parse_log(&log);
    let (files, truncated) = parse_diff(&patch);
    let hash = commits
        .first()
        .map_or_else(|| commit.to_owned(), |c| c.hash.clone());
    Ok(RunDiff {
        run_id,
        base_branch: format!("{hash}^"),
        run_branch: hash,
        additions: files.iter().map(|f| f.additions).sum(),
        deletions: files.iter().map(|f| f.deletions).sum(),
        commits,
        files,
        truncated,
    })
}

/// The patch of `range` with its per-file counts, as `parse_diff` reads it: paths unquoted,
/// renames found, no colour and no external diff driver whatever the repository configures.
async fn patch_of(dir: &std::path::Path, range: &str) -> Result<String, git::GitError> {
    git::run(
        dir,
        &[
            "-c",
            "core.quotePath=false",
            "diff",
            "--no-color",
            "--no-ext-diff",
            "-M",
            "-z",
            "--numstat",
            "--patch",
            range,
            "--",
        ],
    )
    .await
}

fn parse_log(text: &str) -> Vec<DiffCommit> {
    text.split('\x1e')
        .map(|record| record.trim_start_matches('\n'))
        .filter(|record| !record.is_empty())
        .filter_map(|record| {
            let mut fields = record.splitn(4, '\x1f');
            let hash = fields.next()?.to_owned();
            let author = fields.next()?.to_owned();
            let seconds: i64 = fields.next()?.parse().ok()?;
            let subject = fields.next()?.to_owned();
            Some(DiffCommit {
                hash,
                author,
                authored_at: rfc3339_ms(seconds.saturating_mul(1000)),
                subject,
            })
        })
        .collect()
}

/// Parses `git diff -z --numstat --patch`: the stats, each `added\tdeleted\tpath\0` (a rename
/// is `added\tdeleted\t\0old\0new\0`, binary files count `-`), an empty record, then the
/// patches in the same order. Returns the files and whether patches were left out.
fn parse_diff(text: &str) -> (Vec<FileDiff>, bool) {
    let mut files = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('\0') {
            rest = after;
            break;
        }
        let Some(entry) = numstat_entry(rest) else {
            break;
        };
        let (file, after) = entry;
        files.push(file);
        rest = after;
    }
    let patches = split_patches(rest);
    if patches.len() != files.len() {
        // Never pair a patch with the wrong file: keep the stats alone.
        return (files, !patches.is_empty());
    }
    let mut used = 0;
    let mut truncated = false;
    for (file, patch) in files.iter_mut().zip(patches) {
        if used + patch.len() > MAX_PATCH_BYTES {
            truncated = true;
            continue;
        }
        used += patch.len();
        let mut patch = patch.to_owned();
        if !patch.ends_with('\n') {
            patch.push('\n');
        }
        file.patch = Some(patch);
    }
    (files, truncated)
}

fn numstat_entry(text: &str) -> Option<(FileDiff, &str)> {
    let (added, rest) = text.split_once('\t')?;
    let (deleted, rest) = rest.split_once('\t')?;
    let (path, old_path, rest) = match rest.strip_prefix('\0') {
        Some(renamed) => {
            let (old, rest) = renamed.split_once('\0')?;
            let (new, rest) = rest.split_once('\0')?;
            (new, Some(old.to_owned()), rest)
        }
        None => {
            let (path, rest) = rest.split_once('\0')?;
            (path, None, rest)
        }
    };
    let binary = added == "-" && deleted == "-";
    let file = FileDiff {
        path: path.to_owned(),
        old_path,
        additions: added.parse().unwrap_or(0),
        deletions: deleted.parse().unwrap_or(0),
        binary,
        patch: None,
    };
    Some((file, rest))
}

/// The patch text cut at each `diff --git` line (patch lines never start with it: they start
/// with a space, `+`, `-`, `@` or `\`).
fn split_patches(text: &str) -> Vec<&str> {
    const HEADER: &str = "diff --git ";
    let mut starts: Vec<usize> = text
        .match_indices(&format!("\n{HEADER}"))
        .map(|(at, _)| at + 1)
        .collect();
    if text.starts_with(HEADER) {
        starts.insert(0, 0);
    }
    starts
        .iter()
        .enumerate()
        .map(|(n, &start)| &text[start..starts.get(n + 1).copied().unwrap_or(text.len())])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stats_renames_binaries_and_patches_in_order() {
        let text = "-\t-\tbin.dat\x001\t2\tf.txt\x000\t0\t\x00old.txt\x00new.txt\x00\x00\
            diff --git a/bin.dat b/bin.dat\nBinary files differ\n\
            diff --git a/f.txt b/f.txt\n--- a/f.txt\n+++ b/f.txt\n@@ -1,2 +1 @@\n-a\n-b\n+c\n\
            diff --git a/old.txt b/new.txt\nsimilarity index 100%\nrename from old.txt\nrename to new.txt";
        let (files, truncated) = parse_diff(text);
        assert!(!truncated);
        let summary: Vec<(&str, Option<&str>, u64, u64, bool)> = files
            .iter()
            .map(|f| {
                (
                    f.path.as_str(),
                    f.old_path.as_deref(),
                    f.additions,
                    f.deletions,
                    f.binary,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("bin.dat", None, 0, 0, true),
                ("f.txt", None, 1, 2, false),
                ("new.txt", Some("old.txt"), 0, 0, false),
            ]
        );
        assert!(
            files[1]
                .patch
                .as_deref()
                .unwrap()
                .starts_with("diff --git a/f.txt")
        );
        assert!(files[1].patch.as_deref().unwrap().ends_with("+c\n"));
        assert!(
            files[2]
                .patch
                .as_deref()
                .unwrap()
                .ends_with("rename to new.txt\n")
        );
    }

    #[test]
    fn an_empty_diff_has_no_files() {
        assert_eq!(parse_diff(""), (Vec::new(), false));
        assert!(parse_log("").is_empty());
    }

    #[test]
    fn parses_log_records() {
        let text = "abc\x1fAda\x1f1790000000\x1fsecond: with \x1f in it\x1e\ndef\x1fBo\x1f1790000001\x1ffirst\x1e";
        let commits = parse_log(text);
        assert_eq!(commits.len(), 2);
        assert_eq!(commits[0].subject, "second: with \x1f in it");
        assert_eq!(commits[1].hash, "def");
        assert_eq!(commits[1].authored_at, rfc3339_ms(1_790_000_001_000));
    }
}
