//! The command line, as clap types.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Drive agent loops: one task per iteration, reviewed and verified, on its own branch.
#[derive(Debug, Parser)]
#[command(
    name = "loopctl",
    version,
    propagate_version = true,
    after_help = "Examples:
  loopctl demo                          # the whole loop on a scratch repository
  loopd --data-dir ~/.local/share/loopd &
  loopctl run specs/feature.md --follow # a run on the daemon, its output live
  loopctl list                          # runs, newest first
  loopctl inspect quiet-harbor          # a run by name, id or id prefix
  loopctl diff quiet-harbor && loopctl merge quiet-harbor --target main

Exit status: 0 ok, 1 error, 2 usage error, 130 Ctrl-C while following; `run --wait`,
`run --follow`, `wait`, `exec` and `demo` exit 0 only for a COMPLETED run whose merge (when it
has a target) landed, 3 for a COMPLETED run whose merge did not land (`loopctl merge RUN`
tries it again), 1 for any other end. Data goes to stdout (--json: one JSON document, JSON lines when
following); notes and errors go to stderr."
)]
pub struct Cli {
    /// Address of the loopd daemon.
    #[arg(
        long,
        global = true,
        env = "LOOPD_ADDR",
        default_value = "http://127.0.0.1:7700"
    )]
    pub addr: String,
    /// Bearer token for the daemon (else LOOPD_AUTH_TOKEN, else the data dir's auth-token file;
    /// the daemon's own user needs none on loopback).
    #[arg(long, global = true, env = "LOOPD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Machine output: one JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Agent output exactly as written, terminal escapes and control characters included
    /// (by default they are removed, so an agent cannot drive the terminal).
    #[arg(long, global = true)]
    pub raw: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a run of a spec in this workspace (the git root of the current directory).
    ///
    /// The daemon runs it; --follow shows its output live, --wait blocks until it ends. Either
    /// exits 0 only when the run COMPLETED. With no spec on a terminal, a picker lists the specs.
    #[command(after_help = "Examples:
  loopctl run specs/feature.md
  loopctl run feature.md --follow
  loopctl run feature.md --wait --iterations 10 --verify-cmd 'cargo test'
  loopctl run                        # pick a spec")]
    Run {
        #[command(flatten)]
        run: RunArgs,
        /// Show the agent's output live until the run ends (status lines on stderr).
        #[arg(long)]
        follow: bool,
        /// Block until the run ends.
        #[arg(long)]
        wait: bool,
    },
    /// Runs, newest first.
    #[command(after_help = "Examples:
  loopctl list
  loopctl list --status RUNNING --workspace
  loopctl list --json --limit 0      # every run")]
    List {
        /// Only runs in this state: PENDING, RUNNING, PAUSED, COMPLETED, FAILED or CANCELED.
        #[arg(long, value_parser = run_status)]
        status: Option<String>,
        /// Only runs of this workspace (the git root of the current directory).
        #[arg(long)]
        workspace: bool,
        /// At most this many runs; 0 for every run.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// A run: its worktree, steps, counters and files.
    #[command(
        after_help = "Examples:\n  loopctl inspect 0196f3c2\n  loopctl inspect quiet-harbor --json"
    )]
    Inspect {
        /// The run: a full id, a unique id prefix or a unique name.
        run: String,
    },
    /// Pause a run once its current step ends; `resume` goes on from there.
    ///
    /// The agent's call in flight finishes (a run waiting on a usage limit or a retry pauses at
    /// once); --now stops the call in flight instead, and its step runs again on resume.
    #[command(
        after_help = "Examples:\n  loopctl pause 0196f3c2\n  loopctl pause quiet-harbor --now"
    )]
    Pause {
        /// The run: a full id, a unique id prefix or a unique name.
        run: String,
        /// Stop the agent's call in flight now rather than after its step.
        #[arg(long)]
        now: bool,
    },
    /// Resume a paused run.
    #[command(after_help = "Example:\n  loopctl resume 0196f3c2")]
    Resume {
        /// The run: a full id, a unique id prefix or a unique name.
        run: String,
    },
    /// Cancel a run; its agent is stopped.
    #[command(after_help = "Example:\n  loopctl cancel 0196f3c2")]
    Cancel {
        /// The run: a full id, a unique id prefix or a unique name.
        run: String,
    },
    /// Run a FAILED or CANCELED run again from where it stopped.
    #[command(after_help = "Example:\n  loopctl retry 0196f3c2 && loopctl wait 0196f3c2")]
    Retry {
        /// The run: a full id, a unique id prefix or a unique name.
        run: String,
    },
    /// Block until a run ends; exit 0 only when it COMPLETED.
    #[command(after_help = "Example:\n  loopctl wait 0196f3c2 && git log --oneline run/feature")]
    Wait {
        /// The run: a full id, a unique id prefix or a unique name.
        run: String,
    },
    /// The agent's output: the current step's, live; with -f every step's until the run ends.
    ///
    /// Status lines (phase, iteration, elapsed, tasks) go to stderr. A lost connection is
    /// resumed where it stopped, so nothing is shown twice or missed.
    #[command(
        after_help = "Examples:\n  loopctl tail 0196f3c2\n  loopctl tail -f quiet-harbor\n  loopctl tail -f 0196 --json | jq -r .content"
    )]
    Tail {
        /// The run: a full id, a unique id prefix or a unique name.
        run: String,
        /// Follow across steps until the run ends, reconnecting when needed.
        #[arg(short, long)]
        follow: bool,
    },
    /// The run's event log; -f follows it live until the run ends.
    #[command(
        after_help = "Examples:\n  loopctl events 0196f3c2\n  loopctl events 0196 -f --after 120 --json"
    )]
    Events {
        /// The run: a full id, a unique id prefix or a unique name.
        run: String,
        /// Follow live until the run ends, reconnecting when needed.
        #[arg(short, long)]
        follow: bool,
        /// Only events after this sequence number.
        #[arg(long, value_name = "SEQ")]
        after: Option<u64>,
    },
    /// A finished run's commits and changes against its base branch.
    #[command(
        after_help = "Examples:\n  loopctl diff 0196f3c2\n  loopctl diff quiet-harbor | less -R"
    )]
    Diff {
        /// The run: a full id, a unique id prefix or a unique name.
        run: String,
    },
    /// Merge a COMPLETED run's branch into its target, after its verification commands pass there.
    #[command(
        after_help = "Examples:\n  loopctl merge 0196f3c2\n  loopctl merge 0196f3c2 --strategy merge --target main"
    )]
    Merge {
        /// The run: a full id, a unique id prefix or a unique name.
        run: String,
        /// How to merge; default: the run's merge_strategy.
        #[arg(long, value_parser = ["merge", "squash"])]
        strategy: Option<String>,
        /// The branch to merge into; default: the run's merge_target_branch.
        #[arg(long)]
        target: Option<String>,
    },
    /// Throw a finished run's work away: its worktree and its branch (the commit is printed).
    #[command(after_help = "Example:\n  loopctl scrap 0196f3c2")]
    Scrap {
        /// The run: a full id, a unique id prefix or a unique name.
        run: String,
    },
    /// Push a finished run's branch and open a pull request for it (needs `gh`).
    #[command(after_help = "Example:\n  loopctl pr 0196f3c2 --title 'Feature: the event log'")]
    Pr {
        /// The run: a full id, a unique id prefix or a unique name.
        run: String,
        /// The pull request's title; default: from the run.
        #[arg(long)]
        title: Option<String>,
        /// The pull request's body; default: from the run.
        #[arg(long)]
        body: Option<String>,
    },
    /// A finished run's postmortem: git snapshots, then spec compliance, run quality and a
    /// summary (root cause, evidence, changes to make) from the run's agent, into the run's
    /// analysis/ directory.
    ///
    /// Prints the summary analysis, then where the other files are. A run that has a postmortem
    /// is shown as it is; --again pays for new analyses. Runs in the daemon at
    /// --addr; with --db, or with no daemon at the default address, in this process over the
    /// event log. --prompt-only writes and prints the prompts and asks no agent. Exits 1 when an
    /// analysis failed.
    #[command(after_help = "Examples:
  loopctl analyze --latest
  loopctl analyze 0196f3c2 --again --model opus
  loopctl analyze --latest --prompt-only > prompts.md")]
    Analyze {
        /// The run: a full id, a unique id prefix or a unique name.
        #[arg(required_unless_present = "latest", conflicts_with = "latest")]
        run: Option<String>,
        /// The newest finished run of this workspace (of any workspace when this one has none).
        #[arg(long)]
        latest: bool,
        /// The model of the analyses; default: the run's postmortem_model (sonnet unless
        /// configured).
        #[arg(long)]
        model: Option<String>,
        /// Run the analyses again although the run has a postmortem (new agent calls, paid);
        /// without it an existing postmortem is shown as it is.
        #[arg(long)]
        again: bool,
        /// Write and print the prompts; ask no agent.
        #[arg(long)]
        prompt_only: bool,
        /// Read this event log (a loopd.db file) in this process, never the daemon.
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
    /// Figures across runs: outcomes, iterations to completion, time and cost per task,
    /// verification pass rate, watchdog signals, usage-limit waits and agent retries.
    ///
    /// From the daemon at --addr; with --db, or with no daemon at the default address, from the
    /// event log directly. --json gives the figures as one document.
    #[command(after_help = "Examples:
  loopctl stats
  loopctl stats --since 7d --workspace
  loopctl stats --json | jq .cost_per_task_usd")]
    Stats {
        /// Only runs created this recently: 7d, 24h, 90m, 2w.
        #[arg(long, value_name = "AGE", value_parser = age)]
        since: Option<String>,
        /// Only runs of this workspace (the git root of the current directory).
        #[arg(long)]
        workspace: bool,
        /// Read this event log (a loopd.db file) in this process, never the daemon.
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
    /// An experiment's table (mode=experiment): each iteration's idea, metric, effect against
    /// the best with its interval, and whether it was kept; the start, the best and any drift.
    ///
    /// From the daemon at --addr; with --db, or with no daemon at the default address, from the
    /// event log directly. --json gives {"rows": [...], "summary": {...}, ...}.
    #[command(after_help = "Examples:
  loopctl experiment faster-parser
  loopctl experiment 01J9 --json | jq '.rows[] | select(.kept)'")]
    Experiment {
        /// The run: a full id, a unique id prefix or a unique name.
        run: String,
        /// Read this event log (a loopd.db file) in this process, never the daemon.
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
    /// A shell completion script, on stdout.
    #[command(after_help = "Examples:
  loopctl completions bash > ~/.local/share/bash-completion/completions/loopctl
  loopctl completions zsh > ~/.zfunc/_loopctl
  loopctl completions fish > ~/.config/fish/completions/loopctl.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// A self-contained tour: a scratch git repository, a spec and a three-task plan, the
    /// built-in demo agent, a full loop with review and verification, and where its files are.
    #[command(after_help = "Example:\n  loopctl demo\n  loopctl demo --dir /tmp/loop-demo")]
    Demo {
        /// Where to put the scratch repository and its log (new or empty); default: a temp dir.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Set up this repository for loop: a commented .loop/config, a first spec and plan, and
    /// the run logs kept out of git.
    ///
    /// Writes .loop/config with every key and its default unless one exists (then it is left
    /// as it is). When the repository has no spec yet, or with --spec, writes
    /// <specs_dir>/<NAME>.md and <plans_dir>/<NAME>-plan.md from templates whose <placeholders>
    /// are explained inside; an existing file is never overwritten. Adds log_dir to
    /// .git/info/exclude, so run logs stay out of `git status` without touching .gitignore.
    #[command(after_help = "Examples:
  loopctl init
  loopctl init --spec billing     # specs/billing.md and specs/planning/billing-plan.md")]
    Init {
        /// The name of the spec to scaffold; default: `feature`, and only when the repository
        /// has no spec yet.
        #[arg(long, value_name = "NAME", value_parser = spec_name)]
        spec: Option<String>,
    },
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
        #[arg(long, value_name = "PATH")]
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
        #[command(flatten)]
        log: LogArgs,
        /// Only this run: a full id, a unique id prefix or a unique name.
        run: Option<String>,
    },
    /// Write report.tsv, summary.json, run.log and events.jsonl for a run from the log alone.
    #[command(after_help = "Example:\n  loopctl export 0196f3c2 --db loopd.db --out /tmp/run")]
    Export {
        /// The run: a full id, a unique id prefix or a unique name.
        run: String,
        #[command(flatten)]
        log: LogArgs,
        /// The directory to write the files into (created when missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Copy a whole event log to another store (a SQLite file to PostgreSQL, say), then check
    /// the copy: the same events, and a replay without a difference.
    #[command(
        after_help = "Example:\n  loopctl migrate --from ~/.local/share/loopd/loopd.db --to postgres://loop@db/loop"
    )]
    Migrate {
        /// The log to copy: a path, sqlite:PATH or postgres://…
        #[arg(long, value_parser = parse_store)]
        from: loop_store::StoreAt,
        /// Where to copy it; must hold no event yet.
        #[arg(long, value_parser = parse_store)]
        to: loop_store::StoreAt,
    },
    /// The agent accounts of the runs: the usage limit that holds each, its runs and spend.
    ///
    /// Runs are grouped by the account their agent's calls count against (the `account` key,
    /// else the agent and where its credentials live). A limit one run meets holds them all
    /// until its reset. --json gives the answer of `GET /accounts`.
    #[command(
        after_help = "Examples:\n  loopctl accounts\n  loopctl accounts --json | jq '.accounts[] | select(.limited_until)'"
    )]
    Accounts,
    /// The daemons sharing the event log: heartbeat, runs and capacity of each.
    ///
    /// Asks the daemon at --addr; on a SQLite log it is the only node. --json gives the answer
    /// of `GET /nodes`.
    #[command(
        after_help = "Examples:\n  loopctl nodes\n  loopctl nodes --addr http://10.0.0.2:7700 --json"
    )]
    Nodes,
    /// The run worktrees of this workspace, with their run and size on disk.
    ///
    /// The worktrees the runs created and have not removed, from the daemon at --addr; with
    /// --db, or with no daemon at the default address, from the event log directly.
    #[command(
        after_help = "Examples:\n  loopctl worktrees\n  loopctl worktrees --all --db ~/.local/share/loopd/loopd.db"
    )]
    Worktrees {
        /// Every workspace's run worktrees, not only this one's.
        #[arg(long)]
        all: bool,
        /// Read this event log (a loopd.db file) in this process, never the daemon.
        #[arg(long, value_name = "PATH")]
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
        /// Read this event log (a loopd.db file) in this process, never the daemon.
        #[arg(long, value_name = "PATH")]
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
        /// Read this event log (a loopd.db file) in this process, never the daemon.
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
}

/// A run status, in any case, as the API spells it.
fn run_status(text: &str) -> Result<String, String> {
    text.to_ascii_uppercase()
        .parse::<loop_core::RunStatus>()
        .map(|status| status.as_str().to_owned())
        .map_err(|_| {
            format!("{text:?} is not a run status (PENDING, RUNNING, PAUSED, COMPLETED, FAILED, CANCELED)")
        })
}

/// An age like `7d` or `24h`, checked and kept as typed: the daemon reads the same text.
fn age(text: &str) -> Result<String, String> {
    loop_core::stats::parse_age(text).map(|_| text.trim().to_owned())
}

/// A spec's name for `init --spec`: a file stem, not a path.
fn spec_name(text: &str) -> Result<String, String> {
    let name = text.trim().trim_end_matches(".md");
    let fine = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if fine {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "{text:?} is not a spec name: letters, digits, '-', '_' and '.' only (e.g. billing)"
        ))
    }
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
    /// The run's name; default: a short name from the agent, else the spec's.
    #[arg(long)]
    pub name: Option<String>,
    /// Work on this repository by URL (file://, ssh, https) instead of the current checkout:
    /// SPEC and PLAN are paths in it; the daemon's node mirrors it and pushes the run branch.
    #[arg(long, value_name = "URL")]
    pub repo_url: Option<String>,
    #[command(flatten)]
    pub flags: loop_api::RunFlags,
}

/// Which event log a command reads without a daemon: a SQLite file (`--db`) or any store
/// (`--store`, `contract.md` §6).
#[derive(Clone, Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct LogArgs {
    /// The event log (a loopd.db file).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// The event log as a location: a path, sqlite:PATH or postgres://…
    #[arg(long, value_parser = parse_store)]
    pub store: Option<loop_store::StoreAt>,
}

fn parse_store(text: &str) -> Result<loop_store::StoreAt, String> {
    loop_store::StoreAt::parse(text)
}
