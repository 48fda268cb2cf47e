//! `loopctl completions bash|zsh|fish`: the completion script, generated from the clap
//! definitions so it never drifts from the real commands and flags.

use std::io::{ErrorKind, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

pub fn run(shell: Shell) -> anyhow::Result<ExitCode> {
    // clap_complete panics when its writer fails, and a reader that stops early
    // (`loopctl completions fish | head -1`) makes stdout fail: the script is made in memory,
    // then written here, where a closed pipe is an ordinary end.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "loopctl", &mut script);
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&script).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // The reader has what it wanted: stop quietly, with no error to read.
        Err(error) if error.kind() == ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(error) => Err(error).context("cannot write the completion script to stdout"),
    }
}
