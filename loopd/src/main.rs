//! `loopd`, the daemon. The HTTP API lands with its own issue.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("loopd: the daemon is not built yet; use `loopctl replay` and `loopctl export`");
    ExitCode::from(1)
}
