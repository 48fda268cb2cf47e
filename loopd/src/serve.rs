//! Starting and stopping the daemon: data dir and lock, listener, runtime, signals.

use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::sync::Arc;

use anyhow::{Context, bail};
use loop_runtime::{QueuePolicy, Runtime};
use loop_store::SqliteStore;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::api::{AppState, app};
use crate::lock::DataDirLock;
use crate::options::{self, Options};

/// Runs the daemon until SIGINT or SIGTERM, then stops accepting, stops the agents, records
/// what was interrupted, and returns.
pub async fn serve(options: Options) -> anyhow::Result<()> {
    // Handle the signals before anything can be interrupted half-done.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let address = options.address();
    if !options.allow_remote && !address.ip().is_loopback() {
        bail!(
            "refusing to listen on {address}: not a loopback address (pass --allow-remote to allow it)"
        );
    }
    let data_dir = options.data_dir();
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&data_dir)
        .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make {} owner-only", data_dir.display()))?;
    let mut lock = DataDirLock::take(&data_dir, &format!("http://{address}"))?;
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} (is something else using it?)"))?;
    let bound = listener.local_addr()?;
    lock.record(&format!("http://{bound}"))?;
    // The first line on stderr, before the runtime can log anything: scripts read the address
    // from it. Connections made before the router is up wait in the listen backlog.
    say(&format!(
        "loopd listening on http://{bound} (data dir {})",
        data_dir.display()
    ));

    let db = data_dir.join("loopd.db");
    let store = SqliteStore::open(&db).with_context(|| format!("cannot open {}", db.display()))?;
    let runtime = Runtime::builder()
        .store(Arc::new(store))
        .data_dir(&data_dir)
        .max_concurrency(options.max_concurrency)
        .max_runs_per_workspace(options.max_runs_per_workspace)
        .queue_policy(match options.queue_policy {
            options::QueuePolicy::Fifo => QueuePolicy::Fifo,
            options::QueuePolicy::NewestFirst => QueuePolicy::NewestFirst,
        })
        .build()?;
    let state = AppState::new(runtime.clone());
    let metrics = Arc::clone(&state.metrics);
    let follower = runtime.clone();
    tokio::spawn(async move { metrics.follow(follower).await });

    let shutdown = state.shutdown.clone();
    let router = app(state, options.allow_remote, options.auth_token.clone());

    let stop = shutdown.clone();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            say("loopd: stopping");
            stop.cancel();
        })
        .await?;
    runtime.shutdown().await;
    say("loopd: stopped");
    Ok(())
}

/// A line on stderr; a closed stderr is no reason to stop serving.
fn say(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}
