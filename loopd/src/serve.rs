//! Starting and stopping the daemon: data dir and lock, listener, runtime, signals.

use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::sync::Arc;

use anyhow::{Context, bail};
use loop_runtime::{QueuePolicy, Runtime};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::app::app;
use crate::guard::Guard;
use crate::options::{self, Options};
use crate::state::AppState;
use crate::token::{self, Token};
use loop_runtime::lock::{DataDirLock, LockError};

/// Runs the daemon until SIGINT or SIGTERM, then stops accepting, stops the agents, records
/// what was interrupted, and returns.
pub async fn serve(options: Options) -> anyhow::Result<()> {
    // Handle the signals before anything can be interrupted half-done.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    // Everything the daemon creates (the database and its -wal/-shm, run directories, logs) is
    // its owner's alone.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
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
    let mut lock = match DataDirLock::take(&data_dir, &format!("on http://{address}")) {
        Ok(lock) => lock,
        Err(LockError::Held { dir, holder }) => bail!(
            "another loopd already uses {} ({}); stop it or pass another --data-dir",
            dir.display(),
            if holder.text.is_empty() {
                "holder unknown"
            } else {
                &holder.text
            }
        ),
        Err(error) => return Err(error.into()),
    };
    let token_file = options
        .token_file
        .clone()
        .unwrap_or_else(|| data_dir.join(token::FILE));
    let token = Token::load(&token_file, options.auth_token.as_deref())
        .with_context(|| format!("cannot read or create {}", token_file.display()))?;
    let fd_limit = crate::server::raise_fd_limit();

    // A mistake in the accounts file stops the daemon before it listens.
    let accounts = match &options.accounts {
        Some(path) => crate::accounts_file::load(path, |name| std::env::var(name).ok())?,
        None => Vec::new(),
    };
    // And so does one in the price file.
    let prices = match &options.prices {
        Some(path) => Some(crate::prices_file::load(path)?),
        None => None,
    };

    // The database before the listener: a daemon that says it listens can serve. A PostgreSQL
    // server that does not answer yet is no reason to stop: the node starts, says why it cannot
    // work (`/health` 503), claims nothing, and goes on by itself once the server answers.
    let store_at = options.store_at(&data_dir)?;
    let store = store_at
        .open_when_reachable()
        .context("cannot open the event log")?;
    let log = Arc::clone(&store);
    // What a dead daemon left running is stopped before anything runs again.
    let swept = loop_runtime::process::sweep(&data_dir);
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} (is something else using it?)"))?;
    let bound = listener.local_addr()?;
    lock.record(&format!("on http://{bound}"))?;
    let mut builder = Runtime::builder()
        .accounts(accounts)
        .store(store)
        .data_dir(&data_dir)
        .max_concurrency(options.max_concurrency)
        .max_runs_per_workspace(options.max_runs_per_workspace)
        .queue_policy(match options.queue_policy {
            options::QueuePolicy::Fifo => QueuePolicy::Fifo,
            options::QueuePolicy::NewestFirst => QueuePolicy::NewestFirst,
        });
    if let Some(prices) = prices {
        builder = builder.prices(prices);
    }
    let node = crate::node::identity(
        &data_dir,
        options.node_name.as_deref(),
        options
            .advertise
            .clone()
            .unwrap_or_else(|| format!("http://{bound}")),
        std::time::Duration::from_millis(options.lease_ms.max(500)),
        loop_runtime::ClusterKey::new(&token.value),
    )?;
    // A shared log makes this daemon one node of a cluster; a SQLite log is one machine's.
    let clustered = matches!(store_at, loop_store::StoreAt::Postgres(_));
    if clustered {
        crate::node::check_advertised(&node.address)?;
        builder = builder.node(node.clone());
    }
    let cluster_note = clustered.then(|| {
        let token_note = match &token.source {
            token::Source::Environment => "LOOPD_AUTH_TOKEN".to_owned(),
            token::Source::File(path) => path.display().to_string(),
        };
        format!(
            "loopd: cluster node {} ({}) at {}, lease {} ms; it trusts only nodes that prove \
             the token of {token_note} (give every node the same --token-file or \
             LOOPD_AUTH_TOKEN)",
            node.id,
            node.name,
            node.address,
            node.lease.as_millis()
        )
    });
    // The first line on stderr, before the runtime is built and can log anything (its tasks
    // start at once, and warn while the store is down): scripts read the address from it.
    // Building it reads nothing (a store that cannot be reached yet is waited for by its
    // tasks); a connection made meanwhile waits in the listener's backlog.
    say(&format!(
        "loopd listening on http://{bound} (data dir {})",
        data_dir.display()
    ));
    if let Some(note) = cluster_note {
        say(&note);
    }
    if let loop_store::Reachability::Unreachable { reason, .. } = log.reachability() {
        say(&format!(
            "loopd: the event log at {} cannot be reached yet ({reason}); /health answers 503 \
             and this node claims nothing until it can, then goes on by itself",
            store_at.shown()
        ));
    }
    let runtime = builder.build()?;
    let mut state = AppState::new(runtime.clone(), node);
    state.token = Some(Arc::from(token.value.as_str()));
    let metrics = Arc::clone(&state.metrics);
    let follower = runtime.clone();

    let shutdown = state.shutdown.clone();
    let guard = Guard {
        allow_remote: options.allow_remote,
        token_always: token.source == token::Source::Environment,
        token: Arc::from(token.value.as_str()),
        owner: nix::unistd::geteuid().as_raw(),
        sessions: Arc::default(),
    };
    let router = app(state, guard);
    tokio::spawn(async move { metrics.follow(follower).await });
    if swept > 0 {
        tracing::warn!(
            groups = swept,
            "stopped processes a previous loopd left running"
        );
    }
    if let token::Source::File(path) = &token.source {
        say(&format!(
            "loopd: clients of other users or hosts need the token in {}",
            path.display()
        ));
    }

    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        say("loopd: stopping");
        stop.cancel();
    });
    let limits = crate::server::Limits {
        header_timeout: std::time::Duration::from_millis(options.header_timeout_ms.max(1)),
        max_connections: crate::server::connection_cap(fd_limit),
    };
    crate::server::serve(listener, router, limits, shutdown).await;
    runtime.shutdown().await;
    say("loopd: stopped");
    Ok(())
}

/// A line on stderr; a closed stderr is no reason to stop serving.
fn say(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}
