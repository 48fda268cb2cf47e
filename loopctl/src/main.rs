//! `loopctl`, the command line of `loop`. Parsing, wiring and printing only: the work is done by
//! the libraries.

mod cli;
mod cmd;
mod connect;
mod human;
mod log;
mod output;
mod picker;
mod render;
mod run_ref;
mod table;
mod workspace;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let out = output::Output::new(cli.json);
    let daemon = connect::Daemon::new(&cli.addr, connect::find_token(cli.token));
    match cmd::run(cli.command, &daemon, &out) {
        Ok(status) => status,
        Err(error) => {
            out.error(&error);
            ExitCode::from(1)
        }
    }
}
