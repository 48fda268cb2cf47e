//! `loopctl run [SPEC] [PLAN]`: a run created on the daemon for this workspace, then, with
//! `--follow` or `--wait`, its end awaited.

use std::process::ExitCode;

use loop_api::CreateRun;
use loop_api::runs::RunEnvelope;
use loop_client::blocking::Client;
use serde_json::Value;

use crate::cli::RunArgs;
use crate::cmd::control::wait_for_end;
use crate::cmd::tail::{self, Start};
use crate::interrupt;
use crate::output::Output;
use crate::render::{closing, exit_status, summary};
use crate::workspace;

pub fn run(
    client: &Client,
    args: &RunArgs,
    follow: bool,
    wait: bool,
    out: &Output,
) -> anyhow::Result<ExitCode> {
    let view = client.create_run(&body(args)?)?;
    out.note(&format!(
        "created run {} ({}) in {}",
        view.id, view.name, view.workspace_root
    ));
    if follow {
        interrupt::leave_running(&view.name);
        let view = tail::follow_output(client, view.id, true, Start::First, out)?;
        let envelope = RunEnvelope { run: view };
        out.document(&envelope);
        let view = envelope.run;
        out.note(&summary(&view));
        for line in closing(&view) {
            out.note(&line);
        }
        return Ok(exit_status(&view));
    }
    if wait {
        let view = wait_for_end(client, view.id)?;
        let envelope = RunEnvelope { run: view };
        out.document(&envelope);
        let view = envelope.run;
        out.line(&summary(&view));
        for line in closing(&view) {
            out.note(&line);
        }
        return Ok(exit_status(&view));
    }
    let envelope = RunEnvelope { run: view };
    out.document(&envelope);
    let view = envelope.run;
    out.line(&view.id.to_string());
    out.note(&format!(
        "follow it with `loopctl tail -f {}`, or `loopctl wait {}`",
        view.name, view.name
    ));
    Ok(ExitCode::SUCCESS)
}

/// The `POST /runs` body: the paths, the flags, and the `--config` file's values (read here;
/// the daemon ranks them under the flags, as the runtime ranks a config file).
fn body(args: &RunArgs) -> anyhow::Result<CreateRun> {
    if let Some(url) = &args.repo_url {
        // Paths in a repository the daemon fetches: nothing here to resolve them against.
        let Some(spec) = args.spec.clone() else {
            anyhow::bail!("--repo-url needs the spec: its path in the repository");
        };
        return Ok(CreateRun {
            spec_path: spec,
            plan_path: args.plan.clone(),
            workspace_root: String::new(),
            repo_url: Some(url.clone()),
            name: args.name.clone(),
            config: workspace::config_file(args)?
                .unwrap_or_default()
                .into_iter()
                .map(|(key, value)| (key, Value::String(value)))
                .collect(),
            flags: args.flags.clone(),
        });
    }
    let request = workspace::request(args)?;
    let config = workspace::config_file(args)?
        .unwrap_or_default()
        .into_iter()
        .map(|(key, value)| (key, Value::String(value)))
        .collect();
    Ok(CreateRun {
        spec_path: request.spec_path,
        plan_path: request.plan_path,
        workspace_root: request.workspace_root.to_string_lossy().into_owned(),
        repo_url: None,
        name: request.name,
        config,
        flags: args.flags.clone(),
    })
}
