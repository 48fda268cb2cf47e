//! `loopctl completions bash|zsh|fish`: the completion script, generated from the clap
//! definitions so it never drifts from the real commands and flags.

use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

pub fn run(shell: Shell) -> anyhow::Result<ExitCode> {
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "loopctl",
        &mut std::io::stdout(),
    );
    Ok(ExitCode::SUCCESS)
}
