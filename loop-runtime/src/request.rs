//! A request for a new run, resolved into its frozen `RUN_CREATED`: paths found under the
//! workspace or its `specs_dir`/`plans_dir`, the name, and the configuration by precedence
//! (request values > `--config` file or `$LOOP_CONFIG` > `<workspace>/.loop/config` > defaults).

use std::path::{Path, PathBuf};

use loop_core::config::{self, Config, Layer};
use loop_core::event::{NameSource, RunCreated};

use crate::error::RuntimeError;

/// What a new run is asked to do.
#[derive(Clone, Debug, Default)]
pub struct RunRequest {
    /// The workspace (a git root, usually).
    pub workspace_root: PathBuf,
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
pub(crate) fn resolve(request: &RunRequest) -> Result<RunCreated, RuntimeError> {
    let root = &request.workspace_root;
    if !root.is_dir() {
        return Err(RuntimeError::InvalidRequest {
            what: "workspace_root".to_owned(),
            reason: format!("{} is not a directory", root.display()),
        });
    }
    let mut layers: Vec<Layer> = Vec::new();
    let mut flags = Layer::new();
    for (key, value) in &request.config {
        flags.insert(key.clone(), config::check_value("request", key, value)?);
    }
    layers.push(flags);
    let config_file = request
        .config_file
        .clone()
        .or_else(|| std::env::var_os("LOOP_CONFIG").map(PathBuf::from));
    if let Some(file) = config_file {
        layers.push(
            read_layer(&file)?.ok_or_else(|| RuntimeError::InvalidRequest {
                what: "config".to_owned(),
                reason: format!("{} does not exist", file.display()),
            })?,
        );
    }
    if let Some(layer) = read_layer(&root.join(".loop/config"))? {
        layers.push(layer);
    }
    let config = Config::resolve(&layers);
    // A template mistake is reported now, not when the worktree is made.
    loop_core::worktree_path::render(config.text("worktree_path_template"), "repo", "run/name")
        .map_err(|error| RuntimeError::InvalidRequest {
            what: "worktree_path_template".to_owned(),
            reason: error.to_string(),
        })?;

    let spec = resolve_path(root, &request.spec_path, config.text("specs_dir"));
    let Some(spec) = spec else {
        return Err(RuntimeError::InvalidRequest {
            what: "spec_path".to_owned(),
            reason: format!(
                "no spec {} in {} or its specs_dir",
                request.spec_path,
                root.display()
            ),
        });
    };
    let plan = match &request.plan_path {
        Some(plan) => {
            resolve_path(root, plan, config.text("plans_dir")).unwrap_or_else(|| plan.clone())
        }
        None => {
            let stem = Path::new(&spec)
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
            format!("{}/{stem}-plan.md", config.text("plans_dir"))
        }
    };
    let (name, name_source) = match &request.name {
        Some(name) => (name.clone(), NameSource::Explicit),
        None => {
            let stem = Path::new(&spec)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned());
            (slug(stem.as_deref().unwrap_or("run")), NameSource::SpecSlug)
        }
    };
    Ok(RunCreated {
        name,
        name_source,
        workspace_root: root.to_string_lossy().into_owned(),
        spec_path: spec,
        plan_path: plan,
        config: config.values().clone(),
    })
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

/// `path` as given when it exists under the workspace, else under `dir`; relative to the root.
fn resolve_path(root: &Path, path: &str, dir: &str) -> Option<String> {
    let candidates = [PathBuf::from(path), Path::new(dir).join(path)];
    candidates.into_iter().find_map(|candidate| {
        let full = root.join(&candidate);
        full.is_file().then(|| match full.strip_prefix(root) {
            Ok(relative) => relative.to_string_lossy().into_owned(),
            Err(_) => full.to_string_lossy().into_owned(),
        })
    })
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
