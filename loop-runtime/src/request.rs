//! A request for a new run, resolved into its frozen `RUN_CREATED`: paths found under the
//! workspace or its `specs_dir`/`plans_dir`, the name, and the configuration by precedence
//! (request values > a config file the front end names > `<workspace>/.loop/config` > defaults).
//! Nothing here reads the process environment: a front end passes what it read (`loopctl`
//! its `--config` or `$LOOP_CONFIG`); the daemon passes nothing of its own.

use std::path::{Path, PathBuf};

use loop_core::config::{self, Config, Layer, Settled};
use loop_core::event::{NameSource, RunCreated};

use crate::error::RuntimeError;

/// What a new run is asked to do.
#[derive(Clone, Debug, Default)]
pub struct RunRequest {
    /// The workspace (a git root, usually). Ignored when `repo_url` is given.
    pub workspace_root: PathBuf,
    /// The repository by URL instead (`file://`, ssh, https): the runtime keeps a checkout of
    /// it in its data dir, and the run can be continued by any node that reaches the URL.
    pub repo_url: Option<String>,
    /// The spec, relative to the workspace or absolute.
    pub spec_path: String,
    /// The plan; `<plans_dir>/<spec stem>-plan.md` when `None`.
    pub plan_path: Option<String>,
    pub name: Option<String>,
    /// Config values from flags or the API: the highest layer.
    pub config: Layer,
    /// A `--config` file, between the flags and `<workspace>/.loop/config`.
    pub config_file: Option<PathBuf>,
}

/// The frozen `RUN_CREATED` of a request: paths, name, and the configuration by precedence.
/// `base_branch`: the branch a repository named by URL was checked out at, over any layer's.
pub(crate) fn resolve(
    request: &RunRequest,
    base_branch: Option<String>,
) -> Result<RunCreated, RuntimeError> {
    let invalid = |what: &str, reason: String| RuntimeError::InvalidRequest {
        what: what.to_owned(),
        reason,
    };
    let missing = |what: &str, reason: String| RuntimeError::Missing {
        what: what.to_owned(),
        reason,
    };
    let given = &request.workspace_root;
    if !given.is_absolute() {
        return Err(invalid(
            "workspace_root",
            format!("{} is not an absolute path", given.display()),
        ));
    }
    if !given.is_dir() {
        return Err(missing(
            "workspace_root",
            format!("{} is not a directory", given.display()),
        ));
    }
    // Paths are checked against the workspace as the file system sees it (symlinks resolved).
    let root = &given
        .canonicalize()
        .map_err(|error| invalid("workspace_root", format!("{}: {error}", given.display())))?;
    if !root.join(".git").exists() {
        return Err(invalid(
            "workspace_root",
            format!(
                "{} is not the root of a git repository (a run works on a branch of one): \
                 run `git init` there, or start from the repository's top directory",
                root.display()
            ),
        ));
    }
    if let Some(name) = &request.name {
        check_name(name)?;
    }
    let mut resolved = workspace_config(root, &request.config, request.config_file.as_deref())?;
    if let Some(base) = base_branch {
        resolved.settle(Settled::BaseBranch(base));
    }
    let config = resolved.typed();
    // A template mistake is reported now, not when the worktree is made.
    loop_core::worktree_path::render(&config.worktree_path_template, "repo", "run/name").map_err(
        |error| RuntimeError::InvalidRequest {
            what: "worktree_path_template".to_owned(),
            reason: error.to_string(),
        },
    )?;

    config::experiment::check(&resolved, "config")?;
    if config.iterations == 0 {
        return Err(invalid(
            "iterations",
            "must be at least 1 (a run of 0 iterations would do nothing)".to_owned(),
        ));
    }
    let spec = resolve_path(root, &request.spec_path, &config.specs_dir)?;
    let Some(spec) = spec else {
        let near = nearest_spec(root, &request.spec_path, &config.specs_dir)
            .map(|near| format!("; did you mean {near}?"))
            .unwrap_or_default();
        return Err(RuntimeError::Missing {
            what: "spec_path".to_owned(),
            reason: format!(
                "no spec {} in {} or its specs_dir{near}",
                request.spec_path,
                root.display()
            ),
        });
    };
    let plan = match &request.plan_path {
        Some(plan) => resolve_path(root, plan, &config.plans_dir)?.ok_or_else(|| {
            missing(
                "plan_path",
                format!(
                    "no plan {plan} in {} or its plans_dir ({})",
                    root.display(),
                    config.plans_dir
                ),
            )
        })?,
        None => {
            let stem = Path::new(&spec)
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
            let plan = format!("{}/{stem}-plan.md", config.plans_dir);
            // An experiment's iterations are ideas measured, not tasks: it needs no plan.
            if !root.join(&plan).is_file() && !config.is_experiment() {
                return Err(missing(
                    "plan_path",
                    format!(
                        "no plan at {plan} in {}: write the spec's tasks there as a `- [ ]` \
                         checklist, or name the plan (loopctl run SPEC PLAN)",
                        root.display()
                    ),
                ));
            }
            plan
        }
    };
    // An experiment needs no plan (its iterations are ideas measured): no tasks to count.
    let tasks = if config.is_experiment() {
        None
    } else {
        Some(check_plan(root, &plan)?)
    };
    let prompt_template = read_template(root, config.prompt_file.as_deref())?;
    let (name, name_source) = match &request.name {
        Some(name) => (name.clone(), NameSource::Explicit),
        None => {
            let stem = Path::new(&spec)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned());
            (slug(stem.as_deref().unwrap_or("run")), NameSource::SpecSlug)
        }
    };
    if config.account.is_none() {
        let account = crate::accounts::derive(&config, |name| std::env::var(name).ok());
        resolved.settle(Settled::Account(account));
    }
    Ok(RunCreated {
        name,
        name_source,
        workspace_root: root.to_string_lossy().into_owned(),
        spec_path: spec,
        plan_path: plan,
        config: resolved.values().clone(),
        prompt_template,
        tasks_done: tasks.as_ref().map(|t| t.tasks_done()),
        tasks_total: tasks.as_ref().map(|t| t.tasks_total()),
    })
}

/// The custom prompt from the person's checkout: `prompt_file` (relative to the workspace, or
/// absolute), which must exist, else `.loop/prompt.txt` if there is one.
fn read_template(root: &Path, prompt_file: Option<&str>) -> Result<Option<String>, RuntimeError> {
    let Some(file) = prompt_file else {
        return Ok(std::fs::read_to_string(root.join(".loop/prompt.txt")).ok());
    };
    let path = root.join(file);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(error) => Err(RuntimeError::Missing {
            what: "prompt_file".to_owned(),
            reason: format!("cannot read {}: {error}", path.display()),
        }),
    }
}

/// A workspace's configuration by the one precedence every front end uses: `given` (flags or
/// API fields, checked here) > the `config_file` a front end names (which must exist) >
/// `<root>/.loop/config` > the defaults.
pub fn workspace_config(
    root: &Path,
    given: &Layer,
    config_file: Option<&Path>,
) -> Result<Config, RuntimeError> {
    let mut layers: Vec<Layer> = Vec::new();
    let mut checked = Layer::new();
    for (key, value) in given {
        checked.insert(key.clone(), config::check_value("request", key, value)?);
    }
    layers.push(checked);
    if let Some(file) = config_file {
        layers.push(read_layer(file)?.ok_or_else(|| RuntimeError::Missing {
            what: "config".to_owned(),
            reason: format!("{} does not exist", file.display()),
        })?);
    }
    if let Some(layer) = project_layer(root)? {
        layers.push(layer);
    }
    Ok(Config::resolve(&layers))
}

/// `<root>/.loop/config`, read as a file the agent controls (an agent working in place can make
/// it a FIFO or a link out): a regular file beneath the root, or nothing when there is none.
fn project_layer(root: &Path) -> Result<Option<Layer>, RuntimeError> {
    let relative = Path::new(".loop/config");
    match crate::confined::read(root, relative, 1 << 20) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            Ok(Some(config::parse(
                &root.join(relative).to_string_lossy(),
                &text,
            )?))
        }
        Err(crate::confined::Refused::Missing) => Ok(None),
        Err(refused) => Err(RuntimeError::InvalidRequest {
            what: ".loop/config".to_owned(),
            reason: refused.to_string(),
        }),
    }
}

fn read_layer(path: &Path) -> Result<Option<Layer>, RuntimeError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(config::parse(&path.to_string_lossy(), &text)?)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(RuntimeError::Io {
            what: path.display().to_string(),
            source,
        }),
    }
}

/// `path` as given when it is a file under the workspace, else under `dir`; relative to the
/// root. A path that leads out of the workspace (`..`, an absolute path elsewhere, a symlink
/// out) is refused: a run reads and edits only its repository.
fn resolve_path(root: &Path, path: &str, dir: &str) -> Result<Option<String>, RuntimeError> {
    let candidates = [PathBuf::from(path), Path::new(dir).join(path)];
    for candidate in candidates {
        let full = root.join(&candidate);
        if !full.is_file() {
            continue;
        }
        let real = full.canonicalize().map_err(|source| RuntimeError::Io {
            what: full.display().to_string(),
            source,
        })?;
        return match real.strip_prefix(root) {
            Ok(relative) => Ok(Some(relative.to_string_lossy().into_owned())),
            Err(_) => Err(RuntimeError::InvalidRequest {
                what: "path".to_owned(),
                reason: format!(
                    "{path} is outside the workspace {}: specs and plans must live in the repository",
                    root.display()
                ),
            }),
        };
    }
    Ok(None)
}

/// The longest run name taken.
const MAX_NAME: usize = 100;

fn check_name(name: &str) -> Result<(), RuntimeError> {
    let problem = if name.trim().is_empty() {
        Some("is empty".to_owned())
    } else if name.chars().count() > MAX_NAME {
        Some(format!("is longer than {MAX_NAME} characters"))
    } else if name.chars().any(char::is_control) {
        Some("has control characters".to_owned())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(RuntimeError::InvalidRequest {
            what: "name".to_owned(),
            reason: format!("the run name {problem}"),
        }),
        None => Ok(()),
    }
}

/// The plan must have something to do; the plan as read.
fn check_plan(root: &Path, plan: &str) -> Result<loop_core::plan::Plan, RuntimeError> {
    let path = root.join(plan);
    let text = std::fs::read_to_string(&path).map_err(|source| RuntimeError::Io {
        what: path.display().to_string(),
        source,
    })?;
    let parsed = loop_core::plan::Plan::parse(&text);
    if parsed.tasks_total() == 0 {
        return Err(RuntimeError::InvalidRequest {
            what: "plan".to_owned(),
            reason: format!(
                "{plan} has no tasks: write them as a checklist (`- [ ] do this`), one per line"
            ),
        });
    }
    if let Some(task) = parsed.placeholders().next() {
        return Err(RuntimeError::InvalidRequest {
            what: "plan".to_owned(),
            reason: format!(
                "{plan}:{} is still a placeholder ({}): write your own tasks in its place",
                task.line,
                task.text.trim()
            ),
        });
    }
    if parsed.is_complete() {
        return Err(RuntimeError::PlanComplete {
            plan: plan.to_owned(),
            tasks: parsed.tasks_total(),
        });
    }
    Ok(parsed)
}

/// The spec under `specs_dir` whose name is nearest to a mistyped `wanted` (within a third of
/// its length in edits), as a path relative to the workspace.
fn nearest_spec(root: &Path, wanted: &str, specs_dir: &str) -> Option<String> {
    let wanted_name = Path::new(wanted)
        .file_name()?
        .to_string_lossy()
        .to_lowercase();
    let entries = std::fs::read_dir(root.join(specs_dir)).ok()?;
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_spec =
                entry.file_type().is_ok_and(|kind| kind.is_file()) && name.ends_with(".md");
            is_spec.then_some(name)
        })
        .map(|name| {
            let lower = name.to_lowercase();
            let distance = strsim::levenshtein(&wanted_name, &lower).min(strsim::levenshtein(
                &wanted_name,
                lower.trim_end_matches(".md"),
            ));
            (distance, name)
        })
        .filter(|(distance, _)| *distance <= wanted_name.chars().count().div_ceil(3).max(1))
        .min()
        .map(|(_, name)| format!("{specs_dir}/{name}"))
}

/// Lowercase letters and digits, other runs of characters as one `-`.
pub fn slug(text: &str) -> String {
    let mut slug = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-').to_owned();
    if slug.is_empty() {
        "run".to_owned()
    } else {
        slug
    }
}

/// The data directory when none is given: `$LOOPD_DATA_DIR`, else `$XDG_DATA_HOME/loopd`, else
/// `~/.local/share/loopd`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LOOPD_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("loopd");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/share/loopd")
}
