//! `loopctl init`: a repository set up for loop, with nothing that is there changed.
//!
//! Three things, each skipped (and said so) when already done, so running it again is safe:
//! a commented `.loop/config`; a first spec and plan from templates when the repository has no
//! spec yet (or the one `--spec` names); and the log directory added to `.git/info/exclude`.
//! The exclude file rather than `.gitignore`: the tool keeps its own files out of `git status`
//! without editing a tracked file, which would itself show up as a change to commit.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use loop_core::config::Config;
use serde::Serialize;

use crate::output::Output;
use crate::{picker, workspace};

/// The spec written when the repository has none and `--spec` names none.
const DEFAULT_SPEC: &str = "feature";
/// The spec template; `{{title}}`, `{{date}}` and `{{plan_path}}` are filled in, the
/// `<placeholders>` are the person's to write (the template says so).
const SPEC_TEMPLATE: &str = include_str!("init/spec.md");
/// The plan template; `{{title}}` and `{{spec_path}}` are filled in.
const PLAN_TEMPLATE: &str = include_str!("init/plan.md");

/// A file `init` wrote, or found and left alone.
#[derive(Debug, Serialize)]
struct File {
    path: PathBuf,
    written: bool,
}

/// What happened to `.git/info/exclude`.
#[derive(Debug, Serialize)]
struct Exclude {
    /// The exclude file, `None` when the workspace is not a git repository.
    path: Option<PathBuf>,
    /// The pattern for the log directory (`/logs/loop/`).
    pattern: String,
    /// Whether the pattern was added now (not when git already ignored the directory).
    added: bool,
    /// Why nothing was added, when nothing was.
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<String>,
}

/// `loopctl init [--spec NAME]`.
pub fn run(spec: Option<&str>, out: &Output) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let root = workspace::root_of(&cwd);

    let config_file = write_config(&root)?;
    let shown = |path: &Path| {
        path.strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    if config_file.written {
        out.line(&format!(
            "wrote {} (every key with its default, commented out)",
            shown(&config_file.path)
        ));
    } else {
        out.line(&format!(
            "left {} as it is (it exists; edit it to change a key)",
            shown(&config_file.path)
        ));
    }
    // The project's own configuration says where specs, plans and logs go.
    let config = project_config(&root)?;

    let scaffolded = scaffold(&root, &config, spec)?;
    match &scaffolded {
        Some((spec, plan)) => {
            for file in [spec, plan] {
                out.line(&if file.written {
                    format!("wrote {}: fill in its <placeholders>", shown(&file.path))
                } else {
                    format!("left {} as it is (it exists)", shown(&file.path))
                });
            }
        }
        None => out.line(&format!(
            "{} has specs already: no template written (`loopctl init --spec NAME` writes one)",
            config.typed().specs_dir
        )),
    }

    let exclude = exclude_logs(&root, &config.typed().log_dir)?;
    out.line(&match (&exclude.path, exclude.added, &exclude.skipped) {
        (Some(path), true, _) => format!(
            "git ignores the run logs: added {} to {}",
            exclude.pattern,
            shown(path)
        ),
        (_, _, Some(why)) => format!("run logs: {why}"),
        (_, _, None) => format!("run logs: {} is left as it is", exclude.pattern),
    });

    let spec_path = scaffolded.as_ref().map(|(spec, _)| shown(&spec.path));
    let describe = match &spec_path {
        Some(spec) => format!("describe the work in {spec} and its tasks in the plan, then "),
        None => String::new(),
    };
    let run = match &spec_path {
        Some(spec) => format!("`loopctl run {spec}`"),
        None => "`loopctl run` (it picks a spec)".to_owned(),
    };
    out.note(&if exclude.path.is_none() {
        // A run works on a branch of its own, in a worktree made from a commit: outside git
        // `loopctl run` would be refused.
        format!(
            "next: {} is not in a git repository, and a run works on a branch of its own: \
             `git init && git add -A && git commit -m 'first commit'`, then {describe}{run} \
             (or run in place, without git: `--no-worktree`)",
            root.display()
        )
    } else {
        format!("next: {describe}{run}")
    });
    out.document(&crate::documents::Initialized {
        config: &config_file,
        spec: scaffolded.as_ref().map(|(spec, _)| spec),
        plan: scaffolded.as_ref().map(|(_, plan)| plan),
        exclude: &exclude,
    });
    Ok(ExitCode::SUCCESS)
}

/// `.loop/config` from the key table, unless there is one.
fn write_config(root: &Path) -> anyhow::Result<File> {
    let path = root.join(".loop/config");
    if path.exists() {
        return Ok(File {
            path,
            written: false,
        });
    }
    std::fs::create_dir_all(root.join(".loop"))
        .with_context(|| format!("cannot create {}", root.join(".loop").display()))?;
    write_new(&path, &loop_core::config::commented_template())?;
    Ok(File {
        path,
        written: true,
    })
}

/// The workspace's `.loop/config` over the defaults (no flags, no `--config`: `init` is about
/// the project).
fn project_config(root: &Path) -> anyhow::Result<Config> {
    let path = root.join(".loop/config");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let layer = loop_core::config::parse(&path.to_string_lossy(), &text)?;
    Ok(Config::resolve([&layer]))
}

/// The spec `name` and its plan from the templates, each unless it exists; `None` when no name
/// was given and the repository has a spec already.
fn scaffold(
    root: &Path,
    config: &Config,
    name: Option<&str>,
) -> anyhow::Result<Option<(File, File)>> {
    let name = match name {
        Some(name) => name,
        None if picker::specs(root, config).is_empty() => DEFAULT_SPEC,
        None => return Ok(None),
    };
    let typed = config.typed();
    let spec_path = Path::new(&typed.specs_dir).join(format!("{name}.md"));
    let plan_path = Path::new(&typed.plans_dir).join(format!("{name}-plan.md"));
    let title = title(name);
    let date = jiff::tz::Offset::UTC
        .to_datetime(jiff::Timestamp::now())
        .date()
        .to_string();
    let fill = |template: &str| {
        template
            .replace("{{title}}", &title)
            .replace("{{date}}", &date)
            .replace("{{spec_path}}", &spec_path.display().to_string())
            .replace("{{plan_path}}", &plan_path.display().to_string())
    };
    let spec = write_unless_there(&root.join(&spec_path), &fill(SPEC_TEMPLATE))?;
    let plan = write_unless_there(&root.join(&plan_path), &fill(PLAN_TEMPLATE))?;
    Ok(Some((spec, plan)))
}

/// `user-auth_flow` → `User auth flow`.
fn title(name: &str) -> String {
    let words = name.replace(['-', '_'], " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => words,
    }
}

fn write_unless_there(path: &Path, text: &str) -> anyhow::Result<File> {
    if path.exists() {
        return Ok(File {
            path: path.to_owned(),
            written: false,
        });
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_new(path, text)?;
    Ok(File {
        path: path.to_owned(),
        written: true,
    })
}

/// Writes a file that must not exist yet: a file that appeared meanwhile is not overwritten.
fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `/<log_dir>/` added to the repository's exclude file, unless git ignores it already.
fn exclude_logs(root: &Path, log_dir: &str) -> anyhow::Result<Exclude> {
    let relative = match Path::new(log_dir).strip_prefix(root) {
        Ok(inside) => inside.to_owned(),
        Err(_) => PathBuf::from(log_dir),
    };
    let relative = relative.to_string_lossy();
    let relative = relative.trim_start_matches("./").trim_matches('/');
    let pattern = format!("/{relative}/");
    let skipped = |why: String| Exclude {
        path: None,
        pattern: pattern.clone(),
        added: false,
        skipped: Some(why),
    };
    if Path::new(relative).is_absolute() || relative.is_empty() || relative.starts_with("..") {
        return Ok(skipped(format!(
            "log_dir {log_dir} is outside the repository: nothing to exclude"
        )));
    }
    // `--git-path` answers for a linked worktree too, whose `.git` is a file.
    let Some(exclude) = git(root, &["rev-parse", "--git-path", "info/exclude"]) else {
        return Ok(skipped(format!(
            "{} is not a git repository: nothing to exclude",
            root.display()
        )));
    };
    let exclude = root.join(exclude);
    let probe = format!("{relative}/run-probe/report.tsv");
    if git(root, &["check-ignore", "-q", "--no-index", &probe]).is_some() {
        return Ok(Exclude {
            path: Some(exclude),
            pattern: pattern.clone(),
            added: false,
            skipped: Some(format!("git ignores {relative}/ already")),
        });
    }
    let mut text = std::fs::read_to_string(&exclude).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "# loop's run logs (log_dir), added by `loopctl init`\n{pattern}\n"
    ));
    if let Some(dir) = exclude.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&exclude, text)
        .with_context(|| format!("cannot write {}", exclude.display()))?;
    Ok(Exclude {
        path: Some(exclude),
        pattern,
        added: true,
        skipped: None,
    })
}

/// `git <args>` in `dir`: its trimmed stdout when it succeeds.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_becomes_a_title() {
        assert_eq!(title("feature"), "Feature");
        assert_eq!(title("user-auth_flow"), "User auth flow");
    }

    #[test]
    fn the_templates_parse_as_a_spec_header_and_a_plan_of_open_tasks() {
        let spec = SPEC_TEMPLATE
            .replace("{{title}}", "Billing")
            .replace("{{date}}", "2026-12-01");
        let header = loop_core::spec::SpecHeader::parse(&spec);
        assert_eq!(header.title.as_deref(), Some("Billing"));
        assert_eq!(header.status.as_deref(), Some("Draft"));
        assert_eq!(header.last_updated.as_deref(), Some("2026-12-01"));
        let plan = loop_core::plan::Plan::parse(PLAN_TEMPLATE);
        let blocking = plan.tasks.iter().filter(|task| task.blocking).count();
        assert_eq!(blocking, 3, "the note's words are no tasks: {plan:?}");
        assert_eq!(plan.tasks.len(), 4, "and one check for a person");
    }
}
