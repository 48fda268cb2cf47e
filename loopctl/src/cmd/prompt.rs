//! `loopctl prompt`: the implementation prompt a run would be sent first, without a daemon.

use std::process::ExitCode;

use crate::cli::RunArgs;
use crate::output::Output;
use crate::workspace;

pub fn run(args: &RunArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let request = workspace::request(args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let prompt = runtime.block_on(loop_runtime::preview_prompt(&request))?;
    out.document(&crate::documents::Prompt { prompt: &prompt });
    out.raw(&prompt);
    Ok(ExitCode::SUCCESS)
}
