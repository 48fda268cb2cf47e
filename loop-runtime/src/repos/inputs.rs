//! What a request may hand to git: a repository URL of the protocols a run may fetch from,
//! and branch names git itself accepts — checked when the run is submitted (or a merge asked
//! for), so that a bad value is a clear 400 at once instead of a git command doing something
//! else with it later.
//!
//! - A URL is `https://`, `ssh://` (or scp's `user@host:path`), `git://` or `file://`. Git takes
//!   far more: `ext::<command>` runs a command, `fd::<n>` talks over a file descriptor of the
//!   daemon's (`fd::17` hung a submit for over a minute), and a value starting with `-` is an
//!   option. Every git the runtime starts is limited to the same protocols by
//!   `GIT_ALLOW_PROTOCOL` ([`crate::git::run`]), so nothing slips past this check either.
//! - A branch name (`base_branch`, `run_branch_prefix`, `merge_target_branch`, a merge's
//!   target) must pass `git check-ref-format` as a branch and may not start with `-`, so it
//!   can never be read as an option where git takes a name.

use std::path::Path;

use crate::error::RuntimeError;

/// The configuration keys that name branches.
pub const BRANCH_KEYS: &[&str] = &["base_branch", "run_branch_prefix", "merge_target_branch"];

fn refused(what: &str, reason: String) -> RuntimeError {
    RuntimeError::InvalidRequest {
        what: what.to_owned(),
        reason,
    }
}

/// Refuses a `repo_url` that is not a URL of the allowed protocols.
pub fn check_url(url: &str) -> Result<(), RuntimeError> {
    let refuse = |why: &str| {
        Err(refused(
            "repo_url",
            format!(
                "{url:?} {why}: give an https://, ssh:// (or user@host:path), git:// or file:// URL"
            ),
        ))
    };
    if url.is_empty() || url.starts_with('-') {
        return refuse("is not a URL");
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return refuse("holds a space or a control character");
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        let allowed = ["https", "ssh", "git", "file"];
        if !allowed.contains(&scheme) {
            return refuse(&format!("uses the protocol {scheme:?}, which runs may not"));
        }
        if rest.is_empty() {
            return refuse("names no repository");
        }
        return Ok(());
    }
    // No scheme: scp's `[user@]host:path` (ssh), as long as the part before the colon has no
    // slash (else git reads a local path) and no `::` anywhere (`fd::17`, `ext::cmd`: a
    // remote helper's `<transport>::<address>`).
    match url.split_once(':') {
        Some((host, path)) if !host.is_empty() && !host.contains('/') && !path.is_empty() => {
            if url.contains("::") {
                refuse("names a remote helper (transport::address)")
            } else {
                Ok(())
            }
        }
        _ => refuse("is not a URL"),
    }
}

/// Refuses a branch name git would not take as a branch, or that starts with `-`.
pub async fn check_branch(key: &str, name: &str) -> Result<(), RuntimeError> {
    let refuse = |why: String| Err(refused(key, format!("{name:?} {why}")));
    if name.starts_with('-') {
        return refuse("starts with '-'".to_owned());
    }
    if name == "HEAD" {
        return refuse("is not a branch name".to_owned());
    }
    // The full ref's name, so that git never reads it as an option.
    let full = format!("refs/heads/{name}");
    let checked = tokio::process::Command::new("git")
        .args(["check-ref-format", &full])
        .current_dir(Path::new("/"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
    match checked {
        Ok(status) if status.success() => Ok(()),
        Ok(_) => refuse("is not a branch name git accepts (git check-ref-format)".to_owned()),
        Err(error) => refuse(format!("could not be checked: cannot run git: {error}")),
    }
}

/// Checks every branch-naming key of `config` that is set; a run branch prefix is checked as
/// the start of a branch name.
pub async fn check_branches<'a>(
    config: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<(), RuntimeError> {
    for (key, value) in config {
        if value.is_empty() || !BRANCH_KEYS.contains(&key.as_str()) {
            continue;
        }
        if key == "run_branch_prefix" {
            let sample = format!("{value}x");
            check_branch(key, &sample).await.map_err(|_| {
                refused(
                    key,
                    format!("{value:?} cannot start a branch name (git check-ref-format)"),
                )
            })?;
        } else {
            check_branch(key, value).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_the_allowed_protocols_pass_and_nothing_else() {
        for url in [
            "https://example.com/team/app.git",
            "ssh://git@host/team/app.git",
            "git@host:team/app.git",
            "host:app.git",
            "git://host/app.git",
            "file:///srv/remote.git",
        ] {
            assert!(check_url(url).is_ok(), "{url}");
        }
        for url in [
            "fd::17",
            "ext::sh -c touch% /tmp/pwned",
            "ext::sh",
            "http://example.com/app.git",
            "ftp://host/app.git",
            "-uhello",
            "--upload-pack=touch /tmp/x",
            "relative/path.git",
            "/abs/path.git",
            "../up.git",
            "https://",
            "https://host/a b",
            "https://host/a\nb",
            "",
            ":path",
            "host:",
        ] {
            assert!(check_url(url).is_err(), "{url:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// Whatever the text, the check answers, and what it lets through is never an option,
        /// a remote helper, or a protocol other than the four.
        #[test]
        fn what_passes_is_never_an_option_a_helper_or_another_protocol(
            url in "[-a-z:/@._ ~\\n]{0,24}|(fd|ext|https|ssh|git|file|http)(::|://|:)[-a-z/@._]{0,12}",
        ) {
            if check_url(&url).is_ok() {
                proptest::prop_assert!(!url.starts_with('-'));
                proptest::prop_assert!(!url.contains(char::is_whitespace));
                match url.split_once("://") {
                    Some((scheme, _)) => proptest::prop_assert!(
                        ["https", "ssh", "git", "file"].contains(&scheme)
                    ),
                    None => {
                        let host = url.split(':').next().unwrap_or("");
                        proptest::prop_assert!(!host.is_empty() && !host.contains('/'));
                        proptest::prop_assert!(!url.contains("::"));
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn branch_names_are_what_git_accepts_as_branches() {
        for name in ["main", "run/", "feature/x-1", "release-2.0", "a.b"] {
            let name = if name.ends_with('/') {
                format!("{name}x")
            } else {
                name.to_owned()
            };
            assert!(check_branch("base_branch", &name).await.is_ok(), "{name}");
        }
        for name in [
            "-main", "--force", "HEAD", "a..b", "a b", "a~1", "a^", "a:b", "a\\b", "a.lock", "a/",
            "/a", "a//b", "@{-1}", "",
        ] {
            assert!(check_branch("base_branch", name).await.is_err(), "{name:?}");
        }
    }

    #[tokio::test]
    async fn a_run_branch_prefix_is_checked_as_the_start_of_a_name() {
        let config = |key: &str, value: &str| {
            std::collections::BTreeMap::from([(key.to_owned(), value.to_owned())])
        };
        assert!(
            check_branches(&config("run_branch_prefix", "run/"))
                .await
                .is_ok()
        );
        assert!(
            check_branches(&config("run_branch_prefix", "-x"))
                .await
                .is_err()
        );
        assert!(
            check_branches(&config("run_branch_prefix", "a.."))
                .await
                .is_err()
        );
        assert!(
            check_branches(&config("merge_target_branch", "main"))
                .await
                .is_ok()
        );
        assert!(
            check_branches(&config("merge_target_branch", "ma in"))
                .await
                .is_err()
        );
        // Unset, and keys that are no branch.
        assert!(
            check_branches(&config("merge_target_branch", ""))
                .await
                .is_ok()
        );
        assert!(check_branches(&config("model", "-x")).await.is_ok());
    }
}
