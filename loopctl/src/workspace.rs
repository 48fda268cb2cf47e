//! The workspace of a command: the git root of the current directory, else the directory itself,
//! and the run request the common run flags describe.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use loop_core::config::{Config, Layer};
use loop_runtime::RunRequest;

use crate::cli::RunArgs;

/// The git root of `dir`, else `dir`.
pub fn root_of(dir: &Path) -> PathBuf {
    std::process::Command::new("git")
        .args(["rev-parse", "--show-toplevel"])
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
        .unwrap_or_else(|| dir.to_owned())
}

/// The request the flags describe, for the workspace of the current directory. A spec or plan
/// given relative to the current directory is made relative to the workspace.
pub fn request(args: &RunArgs) -> anyhow::Result<RunRequest> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let root = root_of(&cwd);
    let Some(spec) = &args.spec else {
        bail!("no spec given: pass the spec file, e.g. `loopctl exec specs/feature.md`");
    };
    let relative = |path: &str| {
        let full = cwd.join(path);
        match full.strip_prefix(&root) {
            Ok(inside) if full.is_file() => inside.to_string_lossy().into_owned(),
            _ => path.to_owned(),
        }
    };
    let config = args.flags.layer("flags")?;
    let spec_path = relative(spec);
    let plan_path = args.plan.as_deref().map(relative);
    Ok(RunRequest {
        repo_url: None,
        workspace_root: root,
        spec_path,
        plan_path,
        name: args.name.clone(),
        config,
        config_file: config_file_path(args),
    })
}

/// `--config`, else `$LOOP_CONFIG`: read by the front end, never by the library.
fn config_file_path(args: &RunArgs) -> Option<PathBuf> {
    args.config
        .clone()
        .or_else(|| std::env::var_os("LOOP_CONFIG").map(PathBuf::from))
}

/// The `--config` file, else `$LOOP_CONFIG`, read and checked here: a daemon does not share the
/// working directory or the environment of the command line. `None` when neither is given.
pub fn config_file(args: &RunArgs) -> anyhow::Result<Option<Layer>> {
    let Some(path) = config_file_path(args) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read the config file {} (given by --config or LOOP_CONFIG)",
            path.display()
        )
    })?;
    Ok(Some(loop_core::config::parse(
        &path.to_string_lossy(),
        &text,
    )?))
}

/// The configuration the flags give in `root`, by the runtime's precedence: flags, the config
/// file, `<root>/.loop/config`, defaults.
pub fn config(args: &RunArgs, root: &Path) -> anyhow::Result<Config> {
    let file = config_file_path(args);
    if let Some(path) = &file {
        std::fs::metadata(path).with_context(|| {
            format!(
                "cannot read the config file {} (given by --config or LOOP_CONFIG)",
                path.display()
            )
        })?;
    }
    let flags = args.flags.layer("flags")?;
    Ok(loop_runtime::workspace_config(
        root,
        &flags,
        file.as_deref(),
    )?)
}
