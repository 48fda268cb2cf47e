//! What a new run can be given in a workspace: the specs under its `specs_dir` and the plans
//! under its `plans_dir` (read-only, names and headers only, nothing outside the workspace),
//! for the dashboard's "new run" form as `loopctl run`'s picker lists them.

use std::path::{Path, PathBuf};

use axum::Json;
use loop_core::config::Layer;
use loop_core::spec::SpecHeader;
use loop_runtime::confined;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorBody};
use crate::extract::QueryParams;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SpecsQuery {
    /// The workspace: an absolute path to a directory.
    workspace_root: String,
}

/// One spec file.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SpecFile {
    /// Relative to the workspace, as `POST /runs` takes it.
    pub path: String,
    pub title: Option<String>,
    pub status: Option<String>,
    pub last_updated: Option<String>,
    /// Its plan by the naming rule (`<plans_dir>/<stem>-plan.md`), when that file exists.
    pub plan_path: Option<String>,
}

/// `{"specs": [...], "plans": [...]}`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SpecsEnvelope {
    pub workspace_root: String,
    pub specs_dir: String,
    pub plans_dir: String,
    /// Sorted by path.
    pub specs: Vec<SpecFile>,
    /// Every plan file, relative to the workspace, sorted.
    pub plans: Vec<String>,
}

/// The most files listed: a workspace whose specs_dir holds more is not a specs dir.
const MAX_FILES: usize = 2000;

/// The specs and plans of a workspace, for choosing what a new run does.
#[utoipa::path(
    get,
    path = "/workspace/specs",
    tag = "runs",
    params(SpecsQuery),
    responses(
        (status = 200, description = "The workspace's specs and plans.", body = SpecsEnvelope),
        (status = 400, description = "Not an absolute path, a bad .loop/config, or a specs_dir \
                                      outside the workspace.", body = ErrorBody),
        (status = 404, description = "No such directory.", body = ErrorBody),
    ),
)]
pub async fn specs(
    QueryParams(query): QueryParams<SpecsQuery>,
) -> Result<Json<SpecsEnvelope>, ApiError> {
    tokio::task::spawn_blocking(move || list(&query.workspace_root))
        .await
        .map_err(|error| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("cannot list specs: {error}"),
            )
        })?
        .map(Json)
}

fn list(workspace: &str) -> Result<SpecsEnvelope, ApiError> {
    let given = Path::new(workspace);
    if !given.is_absolute() {
        return Err(ApiError::bad_request(format!(
            "query `workspace_root`: {workspace:?} is not an absolute path"
        )));
    }
    let root = given
        .canonicalize()
        .ok()
        .filter(|root| root.is_dir())
        .ok_or_else(|| ApiError::not_found(format!("no directory {workspace:?}")))?;
    // The one precedence stack, with no flags and no config file: what `.loop/config` says over
    // the defaults (read as a file the agent controls).
    let config = loop_runtime::workspace_config(&root, &Layer::new(), None)?.typed();
    let specs_dir = inside(&root, &config.specs_dir, "specs_dir")?;
    let plans_dir = inside(&root, &config.plans_dir, "plans_dir")?;
    let relative = |path: &Path| {
        path.strip_prefix(&root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    };
    let plans: Vec<PathBuf> = markdown(&plans_dir, None);
    let mut specs = Vec::new();
    for path in markdown(&specs_dir, Some(&plans_dir)) {
        let text = read_head(&root, &path);
        let header = SpecHeader::parse(&text);
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        let plan = stem
            .map(|stem| plans_dir.join(format!("{stem}-plan.md")))
            .filter(|plan| plans.contains(plan));
        specs.push(SpecFile {
            path: relative(&path),
            title: header.title,
            status: header.status,
            last_updated: header.last_updated,
            plan_path: plan.as_deref().map(relative),
        });
    }
    Ok(SpecsEnvelope {
        workspace_root: root.to_string_lossy().into_owned(),
        specs_dir: config.specs_dir.clone(),
        plans_dir: config.plans_dir.clone(),
        specs,
        plans: plans.iter().map(|p| relative(p)).collect(),
    })
}

/// `dir` (a configured directory) under `root`; refused when it leads out of it.
fn inside(root: &Path, dir: &str, key: &str) -> Result<PathBuf, ApiError> {
    let joined = root.join(dir);
    let resolved = joined.canonicalize().unwrap_or(joined);
    if !resolved.starts_with(root) {
        return Err(ApiError::bad_request(format!(
            "{key} {dir:?} leads outside the workspace"
        )));
    }
    Ok(resolved)
}

/// The `.md` files under `dir`, sorted, not following symbolic links, skipping hidden names
/// and `skip` (the plans under the specs).
fn markdown(dir: &Path, skip: Option<&Path>) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            if found.len() >= MAX_FILES {
                break;
            }
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if hidden || Some(path.as_path()) == skip {
                continue;
            }
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() && path.extension().is_some_and(|e| e == "md") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The start of a file under `root`, enough for its header; nothing when it is not a regular
/// file there any more (listed as one, it may have been swapped for a FIFO since).
fn read_head(root: &Path, path: &Path) -> String {
    use std::io::Read;
    let mut text = Vec::new();
    if let Ok((file, _)) = confined::open(root, confined::beneath(root, path)) {
        let _ = file.take(16 * 1024).read_to_end(&mut text);
    }
    String::from_utf8_lossy(&text).into_owned()
}
