//! `loopctl run [SPEC] [PLAN]`: a run created on the daemon for this workspace, then, with
//! `--follow` or `--wait`, its end awaited.

use std::process::ExitCode;

use serde_json::{Map, Value, json};

use crate::cli::RunArgs;
use crate::client::{Client, field};
use crate::cmd::runs;
use crate::cmd::tail::{self, Start};
use crate::output::Output;
use crate::workspace;

pub fn run(
    client: &Client,
    args: &RunArgs,
    follow: bool,
    wait: bool,
    out: &Output,
) -> anyhow::Result<ExitCode> {
    let answer = client.post("/runs", &body(args)?)?;
    let run: Value = field(&answer, "run")?;
    let view: loop_core::projection::RunView = serde_json::from_value(run)?;
    out.note(&format!(
        "created run {} ({}) in {}",
        view.id, view.name, view.workspace_root
    ));
    if follow {
        let (run, view) = tail::follow_output(client, view.id, true, Start::First, out)?;
        out.document(&json!({ "run": run }));
        out.note(&runs::summary(&view));
        return Ok(runs::exit_status(&view));
    }
    if wait {
        let (run, view) = runs::wait_for_end(client, view.id, out)?;
        out.document(&json!({ "run": run }));
        out.line(&runs::summary(&view));
        return Ok(runs::exit_status(&view));
    }
    out.document(&answer);
    out.line(&view.id.to_string());
    out.note(&format!(
        "follow it with `loopctl tail -f {}`, or `loopctl wait {}`",
        view.id, view.id
    ));
    Ok(ExitCode::SUCCESS)
}

/// The `POST /runs` body: the paths, the flags as fields, and the `--config` file's values
/// (read here; the daemon ranks them under the fields, as the runtime ranks a config file).
fn body(args: &RunArgs) -> anyhow::Result<Value> {
    let request = workspace::request(args)?;
    let mut body = Map::new();
    let mut put = |key: &str, value: Value| {
        body.insert(key.to_owned(), value);
    };
    put("spec_path", json!(request.spec_path));
    put("workspace_root", json!(request.workspace_root));
    let texts = [
        ("plan_path", &request.plan_path),
        ("name", &request.name),
        ("name_source", &args.name_source),
        ("model", &args.model),
        ("agent", &args.agent),
        ("base_branch", &args.base_branch),
        ("run_branch_prefix", &args.run_branch_prefix),
        ("merge_target", &args.merge_target),
        ("merge_strategy", &args.merge_strategy),
        ("worktree_path_template", &args.worktree_path_template),
        ("worktree_provider", &args.worktree_provider),
        ("worktrunk_bin", &args.worktrunk_bin),
        ("worktrunk_config", &args.worktrunk_config),
    ];
    for (key, value) in texts {
        if let Some(value) = value {
            put(key, json!(value));
        }
    }
    if let Some(n) = args.iterations {
        put("iterations", json!(n));
    }
    if !args.verify_cmds.is_empty() {
        put("verify_cmds", json!(args.verify_cmds));
    }
    if args.worktrunk_copy_ignored {
        put("worktrunk_copy_ignored", json!(true));
    }
    if args.no_worktree {
        put("no_worktree", json!(true));
    }
    if let Some(layer) = workspace::config_file(args)? {
        put("config", json!(layer));
    }
    Ok(Value::Object(body))
}
