//! `loopd`, the daemon: flags and environment in, `loopd::serve` out.
//!
//! Logs go to stderr through `tracing`: `RUST_LOG` filters them (default `info`; e.g.
//! `RUST_LOG=loop_runtime=debug` shows every event appended), and `LOOPD_LOG_FORMAT=json`
//! writes one JSON object per line, carrying the `run_id` and `step_id` of the line's run and
//! step, for log collectors; `text` (the default) is for people.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Children (agents, verification) are started through this binary, so the daemon is not
    // copied for each; started so, this call becomes the child and does not return.
    loop_runtime::process::trampoline::serve();
    // Whether the store's URL came as a flag, which `ps` shows, before the options are read.
    let store_flag = std::env::args().any(|arg| arg == "--store" || arg.starts_with("--store="));
    let options = loopd::Options::parse();
    if let Err(error) = init_logging() {
        eprintln!("loopd: {error}");
        return ExitCode::from(2);
    }
    // Read once; from now on no thread, child or same-user process finds them here.
    loopd::secrets::forget();
    if store_flag
        && let Some(loop_store::StoreAt::Postgres(url)) = &options.store
        && loopd::secrets::shows_password(url)
    {
        eprintln!(
            "loopd: warning: the --store URL's password shows in `ps` to every user of this \
             machine; give it in LOOPD_STORE or a --store-file instead"
        );
    }
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

/// Installs the log subscriber `RUST_LOG` and `LOOPD_LOG_FORMAT` ask for.
fn init_logging() -> Result<(), String> {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::filter::LevelFilter;

    // A directive that does not parse is left out rather than stopping the daemon.
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let format = std::env::var("LOOPD_LOG_FORMAT").unwrap_or_default();
    match format.to_ascii_lowercase().as_str() {
        "json" => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
        "" | "text" => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        other => {
            return Err(format!(
                "LOOPD_LOG_FORMAT={other:?}: expected `text` or `json`"
            ));
        }
    }
    Ok(())
}
