//! The closed choices of configuration keys, each an enum whose names are the values a config
//! file takes: the key table ([`crate::config::KEYS`]) checks values against the same names the
//! enum parses, so the two cannot drift.

/// Declares a choice: an enum, its `NAMES` in order, `as_str`, `parse` and `Display`.
macro_rules! choice {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, as a config file writes it.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The choice named `text` (exactly as [`Self::NAMES`] spells it).
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

choice! {
    /// Where a run's files go (`artifact_mode`).
    ArtifactMode {
        /// The workspace's log dir only.
        Workspace => "workspace",
        /// The data dir (or `global_log_dir`) only.
        Global => "global",
        /// Both.
        Mirror => "mirror",
    }
}

choice! {
    /// How strictly the completion token must stand in an answer (`completion_mode`).
    CompletionMode {
        /// The whole answer, trimmed, is the token.
        Exact => "exact",
        /// The last non-empty line, trimmed, is the token.
        Trailing => "trailing",
    }
}

choice! {
    /// How a run is named (`run_naming_mode`).
    NamingMode {
        /// A short agent call proposes a name; the spec's slug when that fails.
        Haiku => "haiku",
        /// The spec's file name, as a slug.
        SpecSlug => "spec_slug",
    }
}

choice! {
    /// What a run does when its account reaches a spending cap (`account_budget_action`).
    BudgetAction {
        /// Wait for the next day or month.
        Wait => "wait",
        /// Fail the run.
        Fail => "fail",
    }
}

choice! {
    /// How a finished run's branch is merged (`merge_strategy`).
    MergeStrategy {
        /// Not at all.
        None => "none",
        /// A merge commit.
        Merge => "merge",
        /// One commit with the run's changes.
        Squash => "squash",
    }
}

choice! {
    /// Where a run works (`worktree_provider`).
    WorktreeChoice {
        /// Worktrunk when `wt` answers, else git.
        Auto => "auto",
        Worktrunk => "worktrunk",
        Git => "git",
        /// The workspace itself, no worktree.
        None => "none",
    }
}

choice! {
    /// When a run gets a postmortem analysis (`postmortem`).
    PostmortemWhen {
        /// Only a run that FAILED: a completed one needs no one to find out what went wrong.
        Failed => "failed",
        /// Every run that ended after doing something.
        Always => "always",
        Never => "never",
    }
}

choice! {
    /// What Claude Code may do without asking (`claude_permission_mode`): it runs unattended,
    /// so whatever would ask is refused instead.
    PermissionMode {
        /// Everything (`--dangerously-skip-permissions`): the agent edits files and runs any
        /// command in the run's worktree.
        BypassPermissions => "bypassPermissions",
        /// File edits; commands that would ask are refused.
        AcceptEdits => "acceptEdits",
        /// What the person's Claude Code settings allow; the rest is refused.
        Default => "default",
        /// Read and plan only.
        Plan => "plan",
    }
}

choice! {
    /// What a run is for (`mode`).
    RunMode {
        /// Work through the plan's tasks until it is done.
        Plan => "plan",
        /// Improve a measured number: each iteration's change is measured against the best so
        /// far and kept only when it is better beyond the noise (`specs/experiment.md`).
        Experiment => "experiment",
    }
}

choice! {
    /// Which way an experiment's metric should move (`goal`).
    Goal {
        /// Lower is better: a time, a size, a loss.
        Minimize => "minimize",
        /// Higher is better: a throughput, a score.
        Maximize => "maximize",
    }
}

/// The agent adapter a run calls (`agent`): one this project ships, or one an embedder
/// registered under its own name (the set is open, so it is not a [`choice!`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AgentName {
    /// Claude Code (`claude -p`).
    Claude,
    /// OpenAI's Codex CLI (`codex exec`).
    Codex,
    /// A shell command (`agent_cmd`) that implements tasks and answers nothing else.
    Command,
    /// An adapter an embedder registered (or a name no adapter has: the runtime refuses it).
    Other(String),
}

impl AgentName {
    pub fn parse(text: &str) -> AgentName {
        match text {
            "claude" => AgentName::Claude,
            "codex" => AgentName::Codex,
            "command" => AgentName::Command,
            other => AgentName::Other(other.to_owned()),
        }
    }

    /// The name the key table, the adapter registry and the log write.
    pub fn as_str(&self) -> &str {
        match self {
            AgentName::Claude => "claude",
            AgentName::Codex => "codex",
            AgentName::Command => "command",
            AgentName::Other(name) => name,
        }
    }

    /// Whether the agent is a model that answers any prompt (a run's name, a postmortem), not
    /// a command that only implements tasks.
    pub fn answers_prompts(&self) -> bool {
        matches!(self, AgentName::Claude | AgentName::Codex)
    }
}

impl std::fmt::Display for AgentName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::AgentName;

    #[test]
    fn agent_names_round_trip_and_registered_ones_are_kept() {
        for text in ["claude", "codex", "command", "stub", ""] {
            assert_eq!(AgentName::parse(text).as_str(), text);
        }
        assert_eq!(AgentName::parse("codex"), AgentName::Codex);
        assert_eq!(
            AgentName::parse("Claude"),
            AgentName::Other("Claude".to_owned())
        );
        assert!(AgentName::Codex.answers_prompts() && !AgentName::Command.answers_prompts());
    }
}
