//! `loopctl`, the command line of `loop`. Parsing, wiring and printing only: the work is done by
//! the libraries.

mod cli;
mod cmd;
mod connect;
mod documents;
mod error;
mod escapes;
mod human;
mod interrupt;
mod live;
mod log;
mod output;
mod picker;
mod render;
mod run_ref;
mod source;
mod table;
mod workspace;

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    // Children (agents, verification) are started through this binary, so the daemon is not
    // copied for each; started so, this call becomes the child and does not return.
    loop_runtime::process::trampoline::serve();
    let matches = match cli::Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(error) => return usage_error(error),
    };
    let cli = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    let out = output::Output::new(cli.json, cli.raw);
    // An address the person gave (flag or LOOPD_ADDR) must be the one answering; the default one
    // may be absent, and the commands that can read the log instead then do (see `source.rs`).
    let chosen = matches.value_source("addr") != Some(ValueSource::DefaultValue);
    let daemon = connect::Daemon::new(&cli.addr, connect::find_token(cli.token), chosen);
    match cmd::run(cli.command, &daemon, &out) {
        Ok(status) => status,
        Err(error) => {
            out.error(&error);
            ExitCode::from(1)
        }
    }
}

/// A command line clap refused (exit 2), or `--help`/`--version` (exit 0), printed by clap;
/// under `--json` a refusal is one JSON object on stderr like every other error.
fn usage_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) || !wants_json()
    {
        error.exit();
    }
    // clap's text is `error: <what>` then usage and a hint; the first line is the message.
    let rendered = error.to_string();
    let message = rendered
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ")
        .to_owned();
    output::error_document(&message, "usage");
    ExitCode::from(2)
}

/// Whether `--json` is among the arguments (before any `--`), for a command line clap could not
/// parse.
fn wants_json() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|arg| arg != "--")
        .any(|arg| arg == "--json")
}
