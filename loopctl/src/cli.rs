//! The command line, as clap types.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Drive agent loops: one task per iteration, reviewed and verified, on its own branch.
#[derive(Debug, Parser)]
#[command(name = "loopctl", version, propagate_version = true)]
pub struct Cli {
    /// Address of the loopd daemon.
    #[arg(
        long,
        global = true,
        env = "LOOPD_ADDR",
        default_value = "http://127.0.0.1:7700"
    )]
    pub addr: String,
    /// Bearer token for the daemon.
    #[arg(long, global = true, env = "LOOPD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Machine output: one JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Rebuild every projection from the event log and report any difference from the stored ones.
    ///
    /// Exits 1 when a difference is found. Works on a database copied from another machine.
    #[command(
        after_help = "Examples:\n  loopctl replay --db ~/.local/share/loopd/loopd.db\n  loopctl replay --db loopd.db 0196f3c2"
    )]
    Replay {
        /// The event log (a loopd.db file).
        #[arg(long)]
        db: PathBuf,
        /// Only this run: a full id, a unique id prefix or a unique name.
        run: Option<String>,
    },
    /// Write report.tsv, summary.json, run.log and events.jsonl for a run from the log alone.
    #[command(after_help = "Example:\n  loopctl export 0196f3c2 --db loopd.db --out /tmp/run")]
    Export {
        /// The run: a full id, a unique id prefix or a unique name.
        run: String,
        /// The event log (a loopd.db file).
        #[arg(long)]
        db: PathBuf,
        /// The directory to write the files into (created when missing).
        #[arg(long)]
        out: PathBuf,
    },
}
