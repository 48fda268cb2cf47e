//! `loopd`'s flags and environment (`contract.md` §1).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum QueuePolicy {
    Fifo,
    NewestFirst,
}

/// Runs agent loops and serves their HTTP API and live streams.
#[derive(Clone, Debug, Parser)]
#[command(name = "loopd", version)]
pub struct Options {
    /// Address to listen on; a non-loopback host needs --allow-remote.
    #[arg(long, env = "LOOPD_LISTEN", default_value = "127.0.0.1:7700")]
    pub listen: SocketAddr,
    /// Shorthand for --listen 127.0.0.1:PORT.
    #[arg(long, conflicts_with = "listen")]
    pub port: Option<u16>,
    /// Holds loopd.db, runs/ and the lock file; default: $XDG_DATA_HOME/loopd or ~/.local/share/loopd.
    #[arg(long, env = "LOOPD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The event log: a path or sqlite:PATH, or postgres://… to share one log between nodes;
    /// default: the data dir's loopd.db.
    /// A URL with a password shows in `ps`: give it in LOOPD_STORE or --store-file instead.
    #[arg(long, env = "LOOPD_STORE", value_parser = parse_store, hide_env_values = true)]
    pub store: Option<loop_store::StoreAt>,
    /// A file whose first line is the event log's location, as --store takes it (so that a
    /// password stays out of `ps` and of the environment).
    #[arg(long, env = "LOOPD_STORE_FILE", conflicts_with = "store")]
    pub store_file: Option<PathBuf>,
    /// With a PostgreSQL log: this node's name in `GET /nodes` (default: the host name).
    #[arg(long, env = "LOOPD_NODE_NAME")]
    pub node_name: Option<String>,
    /// With a PostgreSQL log: the URL other nodes and people reach this node's API at
    /// (default: http:// and the address it listens on).
    #[arg(long, env = "LOOPD_ADVERTISE")]
    pub advertise: Option<String>,
    /// With a PostgreSQL log: how long, in milliseconds, a node's claim on its runs outlives its
    /// last heartbeat; another node takes the runs of one silent this long.
    #[arg(long, env = "LOOPD_LEASE_MS", default_value_t = 15_000)]
    pub lease_ms: u64,
    /// Runs executing at once, daemon-wide.
    #[arg(long, default_value_t = 3)]
    pub max_concurrency: usize,
    /// Runs executing at once per workspace root.
    #[arg(long, default_value_t = 1)]
    pub max_runs_per_workspace: usize,
    /// The order in which pending runs are claimed.
    #[arg(long, value_enum, default_value = "fifo")]
    pub queue_policy: QueuePolicy,
    /// Allow binding to a non-loopback address and requests for non-loopback hosts.
    #[arg(long)]
    pub allow_remote: bool,
    /// How long a connection may take to send a whole request head, new or idle (tests).
    #[arg(long, hide = true, default_value_t = 15_000)]
    pub header_timeout_ms: u64,
    /// When set, every endpoint but /health needs `Authorization: Bearer <token>`.
    #[arg(long, env = "LOOPD_AUTH_TOKEN", hide_env_values = true, hide = true)]
    pub auth_token: Option<String>,
    /// The token in this file (made, owner-only, when missing) instead of the data dir's
    /// auth-token: the cluster's token, which every node of a cluster must share. As with the
    /// data dir's, the daemon's own user on loopback needs none.
    #[arg(long, env = "LOOPD_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The agent accounts runs may name in `account` or `account_pool`, in TOML: one
    /// `[[account]]` table each with `name`, `agent` and `[account.env]` (where its
    /// credentials are); kept by the daemon, never in a run's configuration.
    #[arg(long, env = "LOOPD_ACCOUNTS")]
    pub accounts: Option<PathBuf>,
    /// Prices for agents that report no cost (Codex), over the shipped table: lines `MODEL
    /// INPUT CACHED CACHE_WRITE OUTPUT` in US dollars per million tokens, and `default AGENT
    /// MODEL`; each replaces the shipped line of its model.
    #[arg(long, env = "LOOPD_PRICES")]
    pub prices: Option<PathBuf>,
}

impl Options {
    /// The address to bind, `--port` applied.
    pub fn address(&self) -> SocketAddr {
        match self.port {
            Some(port) => SocketAddr::from(([127, 0, 0, 1], port)),
            None => self.listen,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(loop_runtime::default_data_dir)
    }

    /// Where the event log is: `--store`, the first line of `--store-file`, else the data
    /// dir's `loopd.db`.
    pub fn store_at(&self, data_dir: &std::path::Path) -> anyhow::Result<loop_store::StoreAt> {
        use anyhow::Context;
        if let Some(path) = &self.store_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --store-file {}", path.display()))?;
            let line = text.lines().next().unwrap_or("").trim();
            return parse_store(line)
                .map_err(|error| anyhow::anyhow!("--store-file {}: {error}", path.display()));
        }
        Ok(self
            .store
            .clone()
            .unwrap_or_else(|| loop_store::StoreAt::Sqlite(data_dir.join("loopd.db"))))
    }
}

fn parse_store(text: &str) -> Result<loop_store::StoreAt, String> {
    loop_store::StoreAt::parse(text)
}
