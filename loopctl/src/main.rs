//! `loopctl`, the command line of `loop`. Parsing, wiring and printing only: the work is done by
//! the libraries.

mod cli;
mod cmd;
mod output;
mod run_ref;
mod workspace;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let out = output::Output::new(cli.json);
    match cmd::run(cli.command, &out) {
        Ok(status) => status,
        Err(error) => {
            out.error(&error);
            ExitCode::from(1)
        }
    }
}
