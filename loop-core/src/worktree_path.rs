//! `worktree_path_template`: where a run's worktree goes, e.g.
//! `../{{ repo }}.{{ run_branch | sanitize }}`.
//!
//! Variables: `repo` (the repository's directory name) and `run_branch`; the one filter is
//! `sanitize`, which makes a branch name safe as one path component. Spaces inside the braces
//! are optional. Anything else is an error, reported when the run is created.

use thiserror::Error;

#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("worktree_path_template {template:?}: {problem}")]
pub struct TemplateError {
    pub template: String,
    pub problem: String,
}

/// `/`, `\` and other characters unsafe in one path component become `-`.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' | '\0' => '-',
            c if c.is_control() => '-',
            c => c,
        })
        .collect()
}

/// Renders the template for one run.
pub fn render(template: &str, repo: &str, run_branch: &str) -> Result<String, TemplateError> {
    let error = |problem: String| TemplateError {
        template: template.to_owned(),
        problem,
    };
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(error("a `{{` has no closing `}}`".to_owned()));
        };
        let expression = after[..close].trim();
        let mut parts = expression.split('|').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let mut value = match name {
            "repo" => repo.to_owned(),
            "run_branch" => run_branch.to_owned(),
            other => {
                return Err(error(format!(
                    "unknown variable {other:?} (known: repo, run_branch)"
                )));
            }
        };
        for filter in parts {
            match filter {
                "sanitize" => value = sanitize(&value),
                other => return Err(error(format!("unknown filter {other:?} (known: sanitize)"))),
            }
        }
        out.push_str(&value);
        rest = &after[close + 2..];
    }
    if rest.contains("}}") {
        return Err(error("a `}}` has no opening `{{`".to_owned()));
    }
    out.push_str(rest);
    if out.trim().is_empty() {
        return Err(error("renders to an empty path".to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_variables_and_filters_with_or_without_spaces() {
        for template in [
            "../{{ repo }}.{{ run_branch | sanitize }}",
            "../{{repo}}.{{run_branch|sanitize}}",
        ] {
            assert_eq!(
                render(template, "app", "run/tidy-otter").as_deref(),
                Ok("../app.run-tidy-otter")
            );
        }
        assert_eq!(
            render("/wt/{{ run_branch }}", "app", "run/x").as_deref(),
            Ok("/wt/run/x")
        );
    }

    #[test]
    fn unknown_variables_filters_and_broken_braces_are_errors() {
        for (template, problem) in [
            ("../{{ branch }}", "unknown variable \"branch\""),
            ("../{{ repo | upper }}", "unknown filter \"upper\""),
            ("../{{ repo", "no closing"),
            ("../repo }}", "no opening"),
            ("{{ repo }}", ""),
        ] {
            let result = render(template, "app", "run/x");
            if problem.is_empty() {
                assert!(result.is_ok());
            } else {
                let error = result.expect_err(template);
                assert!(error.problem.contains(problem), "{template}: {error}");
            }
        }
    }
}
