//! The command line, as clap types.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

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
    /// A self-contained tour: a scratch git repository, a spec and a three-task plan, the
    /// built-in demo agent, a full loop with review and verification, and where its files are.
    #[command(after_help = "Example:\n  loopctl demo\n  loopctl demo --dir /tmp/loop-demo")]
    Demo {
        /// Where to put the scratch repository and its log (new or empty); default: a temp dir.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Write a commented .loop/config with every key and its default (never overwrites).
    Init,
    /// Run one loop in this process, with no daemon, following its output live.
    ///
    /// The exit status is 0 only when the run COMPLETED.
    #[command(
        after_help = "Examples:\n  loopctl exec specs/feature.md --no-worktree --agent command\n  loopctl exec feature.md --verify-cmd 'cargo test' --iterations 10 --db /tmp/loop.db"
    )]
    Exec {
        #[command(flatten)]
        run: RunArgs,
        /// The event log; default: loopd.db in the data dir.
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Print the implementation prompt the first iteration would be sent.
    #[command(after_help = "Example:\n  loopctl prompt specs/feature.md")]
    Prompt {
        #[command(flatten)]
        run: RunArgs,
    },
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
    /// The run worktrees of this workspace, with their run and size on disk.
    ///
    /// Reads the event log directly (no daemon): the worktrees its runs created and have not
    /// removed.
    #[command(
        after_help = "Examples:\n  loopctl worktrees\n  loopctl worktrees --all --db ~/.local/share/loopd/loopd.db"
    )]
    Worktrees {
        /// Every workspace's run worktrees, not only this one's.
        #[arg(long)]
        all: bool,
        /// The event log; default: loopd.db in the data dir.
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Remove one run worktree; the run's branch is kept.
    ///
    /// Only a worktree the event log records for a run is removed; one whose run is RUNNING or
    /// PAUSED only with --force.
    #[command(
        name = "worktree-rm",
        after_help = "Example:\n  loopctl worktree-rm ../repo.run-feature"
    )]
    WorktreeRm {
        /// The worktree's directory.
        path: PathBuf,
        /// Remove it even though its run is RUNNING or PAUSED.
        #[arg(long)]
        force: bool,
        /// The event log; default: loopd.db in the data dir.
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Remove the worktrees of finished runs of this workspace and report the disk freed.
    ///
    /// Finished: COMPLETED, FAILED or CANCELED. Run branches are kept.
    #[command(after_help = "Examples:\n  loopctl gc --dry-run\n  loopctl gc --older-than 7 --all")]
    Gc {
        /// Report what would be removed, and remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only runs that last changed at least this many days ago (fractions allowed).
        #[arg(long, value_name = "DAYS", value_parser = days)]
        older_than: Option<Duration>,
        /// Every workspace's finished runs, not only this one's.
        #[arg(long)]
        all: bool,
        /// The event log; default: loopd.db in the data dir.
        #[arg(long)]
        db: Option<PathBuf>,
    },
}

/// A number of days, as a duration.
fn days(text: &str) -> Result<Duration, String> {
    let days: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of days"))?;
    Duration::try_from_secs_f64(days * 86_400.0)
        .map_err(|_| format!("{text:?} is not a number of days at least 0"))
}

/// What a run is asked to do: the spec, the plan, and config values that override the files.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The spec (relative to the current directory, or to specs_dir).
    pub spec: Option<String>,
    /// The plan; default: <plans_dir>/<spec stem>-plan.md.
    pub plan: Option<String>,
    /// A config file between these flags and <workspace>/.loop/config (env LOOP_CONFIG).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long, value_parser = ["haiku", "spec_slug"])]
    pub name_source: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long)]
    pub iterations: Option<u32>,
    /// A verification command (repeatable).
    #[arg(long = "verify-cmd")]
    pub verify_cmds: Vec<String>,
    /// The agent adapter: claude, codex or command.
    #[arg(long)]
    pub agent: Option<String>,
    #[arg(long)]
    pub base_branch: Option<String>,
    #[arg(long)]
    pub run_branch_prefix: Option<String>,
    #[arg(long)]
    pub merge_target: Option<String>,
    #[arg(long, value_parser = ["none", "merge", "squash"])]
    pub merge_strategy: Option<String>,
    #[arg(long)]
    pub worktree_path_template: Option<String>,
    #[arg(long, value_parser = ["auto", "worktrunk", "git"])]
    pub worktree_provider: Option<String>,
    #[arg(long)]
    pub worktrunk_bin: Option<String>,
    #[arg(long)]
    pub worktrunk_config: Option<String>,
    #[arg(long)]
    pub worktrunk_copy_ignored: bool,
    /// Work in the workspace itself instead of a worktree.
    #[arg(long)]
    pub no_worktree: bool,
}

impl RunArgs {
    /// The flags as config keys and values.
    pub fn config_values(&self) -> Vec<(&'static str, String)> {
        let mut values: Vec<(&'static str, String)> = Vec::new();
        let mut set = |key: &'static str, value: &Option<String>| {
            if let Some(value) = value {
                values.push((key, value.clone()));
            }
        };
        set("run_naming_mode", &self.name_source);
        set("model", &self.model);
        set("agent", &self.agent);
        set("base_branch", &self.base_branch);
        set("run_branch_prefix", &self.run_branch_prefix);
        set("merge_target_branch", &self.merge_target);
        set("merge_strategy", &self.merge_strategy);
        set("worktree_path_template", &self.worktree_path_template);
        set("worktree_provider", &self.worktree_provider);
        set("worktrunk_bin", &self.worktrunk_bin);
        set("worktrunk_config_path", &self.worktrunk_config);
        if let Some(n) = self.iterations {
            values.push(("iterations", n.to_string()));
        }
        if !self.verify_cmds.is_empty() {
            values.push(("verify_cmds", self.verify_cmds.join("|")));
        }
        if self.worktrunk_copy_ignored {
            values.push(("worktrunk_copy_ignored", "true".to_owned()));
        }
        if self.no_worktree {
            values.push(("worktree_provider", "none".to_owned()));
        }
        values
    }
}
