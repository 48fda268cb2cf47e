//! The files of a run directory, and nothing outside it.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::error::ApiError;

/// One file of a run directory.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Artifact {
    /// Path relative to the run directory, `/`-separated.
    pub name: String,
    pub bytes: u64,
}

/// Every regular file under `dir`, sorted by name. Symbolic links are not followed.
pub fn list(dir: &Path) -> Vec<Artifact> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file()
                && let Ok(relative) = path.strip_prefix(dir)
            {
                found.push(Artifact {
                    name: relative.to_string_lossy().into_owned(),
                    bytes: entry.metadata().map_or(0, |m| m.len()),
                });
            }
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// The file `name` names inside `dir`: refused when it is absolute, climbs with `..`, or
/// resolves (through a symlink) outside the directory.
pub fn resolve(dir: &Path, name: &str) -> Result<PathBuf, ApiError> {
    let relative = Path::new(name);
    let plain = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if name.is_empty() || !plain {
        return Err(ApiError::bad_request(format!(
            "artifact name {name:?} must be a plain path inside the run directory"
        )));
    }
    let missing = || ApiError::not_found(format!("no artifact {name:?}"));
    let root = dir.canonicalize().map_err(|_| missing())?;
    let path = root.join(relative).canonicalize().map_err(|_| missing())?;
    if !path.starts_with(&root) || !path.is_file() {
        return Err(missing());
    }
    Ok(path)
}
