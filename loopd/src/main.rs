//! `loopd`, the daemon: flags and environment in, `loopd::serve` out.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let options = loopd::Options::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("loopd: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(loopd::serve(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("loopd: {error:#}");
            ExitCode::from(1)
        }
    }
}
