//! The key table: every `.loop/config` key with its default, the shape of its value and a line
//! of documentation. It is the one list of keys: the parser checks values against it,
//! `loopctl init` writes its template from it, and [`super::RunConfig`] reads a run's values
//! by its names.

use super::choice::{
    ArtifactMode, BudgetAction, CompletionMode, Goal, MergeStrategy, NamingMode, PermissionMode,
    PostmortemWhen, RunMode, WorktreeChoice,
};

/// What a key's value must look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    Bool,
    /// A whole number ≥ 0.
    Count,
    /// A number ≥ 0 (dollars).
    Amount,
    /// A share below 1, written `0.01` or `1%`; kept as the decimal.
    Fraction,
    /// Any finite number, or empty for none.
    Number,
    OneOf(&'static [&'static str]),
}

/// One configuration key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub name: &'static str,
    /// The default as written in a config file; empty means unset.
    pub default: &'static str,
    pub kind: Kind,
    pub doc: &'static str,
}

const fn key(name: &'static str, default: &'static str, kind: Kind, doc: &'static str) -> Key {
    Key {
        name,
        default,
        kind,
        doc,
    }
}

use Kind::{Amount, Bool, Count, Fraction, Number, OneOf, Text};

/// Every key, in the order `loopctl init` writes them.
pub const KEYS: &[Key] = &[
    key("specs_dir", "specs", Text, "where specs live"),
    key(
        "plans_dir",
        "specs/planning",
        Text,
        "where plans (<stem>-plan.md) live",
    ),
    key(
        "log_dir",
        "logs/loop",
        Text,
        "where run directories are written, under the workspace",
    ),
    key(
        "global_log_dir",
        "",
        Text,
        "global artifact mirror root; empty = the daemon's data dir",
    ),
    key(
        "artifact_mode",
        "mirror",
        OneOf(ArtifactMode::NAMES),
        "where run artifacts go",
    ),
    key(
        "agent",
        "claude",
        Text,
        "agent adapter: claude, codex, command (or one an embedder registered)",
    ),
    key(
        "agent_cmd",
        "",
        Text,
        "for agent=command: shell command; prompt on stdin and in $LOOP_PROMPT_FILE",
    ),
    key(
        "claude_bin",
        "claude",
        Text,
        "path or name of the Claude Code CLI",
    ),
    key("codex_bin", "codex", Text, "path or name of the Codex CLI"),
    key(
        "model",
        "opus",
        Text,
        "Claude Code's model for implementation",
    ),
    key(
        "claude_permission_mode",
        "bypassPermissions",
        OneOf(PermissionMode::NAMES),
        "what Claude Code may do unasked: bypassPermissions (all), acceptEdits, default, plan",
    ),
    key(
        "review_model",
        "",
        Text,
        "Claude Code's model for review; empty = model",
    ),
    key(
        "codex_model",
        "",
        Text,
        "Codex's model (-m) for every step; empty = Codex's own default",
    ),
    key(
        "iterations",
        "20",
        Count,
        "implementation iterations before iterations_exhausted",
    ),
    key(
        "completion_mode",
        "trailing",
        OneOf(CompletionMode::NAMES),
        "exact: whole answer is the token; trailing: last non-empty line",
    ),
    key(
        "reviewer",
        "true",
        Bool,
        "run a review step after each implementation step",
    ),
    key(
        "prompt_file",
        "",
        Text,
        "custom implementation prompt; else .loop/prompt.txt if present",
    ),
    key(
        "context_files",
        "",
        Text,
        "extra files referenced as @path, space-separated",
    ),
    key(
        "verify_cmds",
        "",
        Text,
        "verification commands: repeat the key, one command each, run whole by sh -c",
    ),
    key(
        "verify_timeout_sec",
        "0",
        Count,
        "timeout per verification command; 0 = none",
    ),
    key(
        "claude_timeout_sec",
        "600",
        Count,
        "timeout per agent call; 0 = none",
    ),
    key(
        "claude_retries",
        "0",
        Count,
        "retries of a failed agent call",
    ),
    key(
        "claude_retry_backoff_sec",
        "5",
        Count,
        "first backoff between agent retries",
    ),
    key(
        "transient_retries",
        "8",
        Count,
        "retries of an agent call that met a network error, 429, 529 or 5xx",
    ),
    key(
        "transient_backoff_sec",
        "15",
        Count,
        "first backoff between those retries; doubles, at most 600",
    ),
    key(
        "agent_heartbeat_sec",
        "60",
        Count,
        "a progress line in the step log after this long without output; 0 = none",
    ),
    key(
        "max_consecutive_verification_failures",
        "3",
        Count,
        "fail the run after this many failed verifications in a row; 0 = off",
    ),
    key(
        "max_consecutive_review_failures",
        "0",
        Count,
        "fail the run after this many failed reviews in a row; 0 = off",
    ),
    key(
        "max_watchdog_rewrites",
        "2",
        Count,
        "prompt rewrites before a watchdog signal fails the run",
    ),
    key(
        "mode",
        "plan",
        OneOf(RunMode::NAMES),
        "plan: work through the plan's tasks; experiment: improve a measured number, keeping only changes measured to be better",
    ),
    key(
        "measure_cmd",
        "",
        Text,
        "for mode=experiment: run by sh -c in a checkout of each commit measured; its last stdout line is a number or a JSON object of numbers",
    ),
    key(
        "metric",
        "",
        Text,
        "the number of measure_cmd's JSON object that decides; empty = its only number",
    ),
    key(
        "goal",
        "minimize",
        OneOf(Goal::NAMES),
        "minimize or maximize the metric",
    ),
    key(
        "measure_repeats",
        "5",
        Count,
        "samples of the candidate and of the best each, taken alternately; at least 2",
    ),
    key(
        "min_effect",
        "0.01",
        Fraction,
        "the smallest relative change worth keeping (0.01 or 1%)",
    ),
    key(
        "confidence",
        "0.95",
        Fraction,
        "how sure a kept change must be to beat the best by min_effect (0.5 to 0.999)",
    ),
    key(
        "target",
        "",
        Number,
        "stop once the best metric reaches this; empty = no target",
    ),
    key(
        "patience",
        "10",
        Count,
        "stop after this many iterations in a row without a kept change; 0 = none",
    ),
    key(
        "baseline_every",
        "5",
        Count,
        "measure the starting commit again every this many iterations, to show drift; 0 = never",
    ),
    key(
        "measure_timeout_sec",
        "0",
        Count,
        "timeout per measure_cmd run; 0 = none",
    ),
    key(
        "max_cost_usd",
        "25",
        Amount,
        "stop the run once reported agent cost passes this; 0 = none",
    ),
    key(
        "account",
        "",
        Text,
        "the agent account this run's calls count against; empty = derived from the agent and its credentials",
    ),
    key(
        "account_pool",
        "",
        Text,
        "accounts the daemon declares (space-separated) among which each agent call goes to the one with the most headroom, failing over at a usage limit; empty = account alone",
    ),
    key(
        "account_reserve_pct",
        "0",
        Count,
        "start no new iteration while the account's rate-limit window is used beyond 100 minus this percent; 0 = none",
    ),
    key(
        "account_concurrency",
        "0",
        Count,
        "the most agent calls of this run's account at once; when more of its runs want one they take turns by iteration; 0 = no cap",
    ),
    key(
        "priority",
        "1",
        Count,
        "this run's share of its account's turns under account_concurrency (2 takes two iterations for one of 1; 0 counts as 1)",
    ),
    key(
        "account_budget_usd_per_day",
        "0",
        Amount,
        "stop calls of this run's account once its calls cost this today (UTC); 0 = none",
    ),
    key(
        "account_budget_usd_per_month",
        "0",
        Amount,
        "the same for the UTC month; 0 = none",
    ),
    key(
        "account_budget_action",
        "wait",
        OneOf(BudgetAction::NAMES),
        "at an account budget: wait for the next day or month, or fail the run",
    ),
    key(
        "usage_limit_wait",
        "true",
        Bool,
        "wait for a usage limit's reset time instead of failing",
    ),
    key(
        "run_naming_mode",
        "haiku",
        OneOf(NamingMode::NAMES),
        "how a run is named",
    ),
    key("run_naming_model", "haiku", Text, "model for the run name"),
    key(
        "base_branch",
        "",
        Text,
        "branch the run starts from; empty = detected",
    ),
    key(
        "run_branch_prefix",
        "run/",
        Text,
        "run branch = prefix + slug(name)",
    ),
    key(
        "merge_target_branch",
        "",
        Text,
        "merge on completion into this branch; empty = no merge",
    ),
    key(
        "merge_strategy",
        "squash",
        OneOf(MergeStrategy::NAMES),
        "how to merge",
    ),
    key(
        "worktree_path_template",
        "../{{ repo }}.{{ run_branch | sanitize }}",
        Text,
        "where the run worktree goes",
    ),
    key(
        "worktree_provider",
        "auto",
        OneOf(WorktreeChoice::NAMES),
        "auto = Worktrunk when wt answers, else git; none = work in the workspace itself",
    ),
    key("worktrunk_bin", "wt", Text, "the Worktrunk binary"),
    key("worktrunk_config_path", "", Text, "Worktrunk config file"),
    key(
        "worktrunk_copy_ignored",
        "false",
        Bool,
        "copy ignored files into a new Worktrunk worktree",
    ),
    key(
        "worktree_cleanup",
        "true",
        Bool,
        "remove the worktree when the run ends (kept while a finished run awaits review)",
    ),
    key("summary_json", "true", Bool, "write summary.json"),
    key(
        "postmortem",
        "failed",
        OneOf(PostmortemWhen::NAMES),
        "postmortem analysis at run end: failed (runs only), always, never",
    ),
    key(
        "postmortem_model",
        "sonnet",
        Text,
        "model for the postmortem's analyses",
    ),
    key(
        "agent_idle_timeout_sec",
        "900",
        Count,
        "stop an agent that prints nothing for this long; 0 = none",
    ),
    key(
        "notify_cmd",
        "",
        Text,
        "run this command with the event JSON on stdin on notable events",
    ),
    key(
        "notify_webhook",
        "",
        Text,
        "POST the event JSON here on notable events",
    ),
];

/// The key named `name`.
pub fn find_key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.name == name)
}

/// The default value of a key ("" for an unknown key).
pub fn default_of(name: &str) -> String {
    find_key(name).map_or_else(String::new, |key| key.default.to_owned())
}
