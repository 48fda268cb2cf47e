//! Closed sets that payloads name by a string: each an enum written as that string, with an
//! `Unknown` case that keeps a name this build does not know (a newer build's log), so every
//! log still decodes and re-encodes to the same text.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares a named set: the enum with `Unknown(String)`, `as_str`, `parse`, `Display` and the
/// string serde form.
macro_rules! named {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A name this build does not know, kept as written.
            Unknown(String),
        }

        impl $name {
            /// The name as the log writes it.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Unknown(text) => text,
                }
            }

            /// The value named `text`; a name outside the set is [`Self::Unknown`].
            pub fn parse(text: &str) -> $name {
                match text {
                    $($text => $name::$variant,)+
                    other => $name::Unknown(other.to_owned()),
                }
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> $name {
                $name::parse(text)
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> $name {
                $name::parse(&text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
                Ok($name::parse(&text))
            }
        }
    };
}

named! {
    /// What made the run's working directory (`WORKTREE_PROVIDER_SELECTED`,
    /// `WORKTREE_CREATED`).
    Provider {
        /// The workspace itself, no worktree (`worktree_provider=none`).
        InPlace => "none",
        /// A git worktree on a run branch.
        Git => "git",
        /// Worktrunk's `wt`.
        Worktrunk => "worktrunk",
    }
}

impl Provider {
    /// Whether the run works in a worktree of its own (one to merge from and remove), not in
    /// the workspace itself.
    pub fn has_worktree(&self) -> bool {
        *self != Provider::InPlace
    }
}

named! {
    /// What a person did with a finished run (`REVIEW_ACTION`).
    ReviewKind {
        /// Viewed the diff (recorded by older builds).
        Diff => "diff",
        Merge => "merge",
        Scrap => "scrap",
        CreatePr => "create_pr",
    }
}

named! {
    /// A kind of evidence that the loop is not moving (`WATCHDOG_SIGNAL`, `RUN_FAILED`'s
    /// watchdog cause); the detectors and the diagnosis are in [`crate::watchdog`].
    Signal {
        /// The answer is the same as the previous iteration's.
        RepeatedOutput => "repeated_output",
        /// The answer says, in words, that nothing was done.
        NoProgress => "no_progress",
        /// The completion token was given but not in a form that counts.
        MalformedToken => "malformed_token",
        /// No new commit and no plan change for several iterations.
        Stalled => "stalled",
    }
}

/// The signals a prompt rewrite answered (`WATCHDOG_REWRITE`'s `signal`), written as their
/// names joined with `,` the way the log has always held them. Split without trimming, so any
/// text decodes and re-encodes unchanged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Signals(pub Vec<Signal>);

impl Signals {
    pub fn parse(text: &str) -> Signals {
        Signals(text.split(',').map(Signal::parse).collect())
    }
}

impl From<&str> for Signals {
    fn from(text: &str) -> Signals {
        Signals::parse(text)
    }
}

impl std::fmt::Display for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, signal) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(signal.as_str())?;
        }
        Ok(())
    }
}

impl Serialize for Signals {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Signals {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Signals::parse(&text))
    }
}

named! {
    /// Why a merge did not land (`merge_failed:<code>` in the merge step's message, the code of
    /// a merge on demand's error, `RUN_FAILED`'s merge cause).
    MergeCode {
        /// The run branch does not merge cleanly onto the target.
        Conflict => "conflict",
        /// A verification command failed on the merged result.
        Verification => "verification",
        /// The target moved while the merge was made, or its push was refused.
        TargetMoved => "target_moved",
        /// The target is checked out with uncommitted changes.
        TargetDirty => "target_dirty",
        /// The target is checked out with untracked files the merge would overwrite.
        TargetUntracked => "target_untracked",
        /// git itself failed.
        Git => "git",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_kept() {
        for text in ["none", "git", "worktrunk", "jj"] {
            let provider: Provider = serde_json::from_str(&format!("{text:?}")).unwrap();
            assert_eq!(provider.as_str(), text);
            assert_eq!(
                serde_json::to_string(&provider).unwrap(),
                format!("{text:?}")
            );
        }
        assert_eq!(Provider::parse("jj"), Provider::Unknown("jj".to_owned()));
        assert!(!Provider::parse("none").has_worktree());
        assert!(Provider::parse("jj").has_worktree());
        for text in ["merge", "scrap", "create_pr", "diff"] {
            assert_eq!(ReviewKind::parse(text).as_str(), text);
        }
        assert_eq!(ReviewKind::parse("create_pr"), ReviewKind::CreatePr);
        assert_eq!(
            ReviewKind::parse("rebase"),
            ReviewKind::Unknown("rebase".to_owned())
        );
    }

    #[test]
    fn signal_lists_keep_their_text_and_merge_codes_round_trip() {
        for text in [
            "stalled",
            "stalled,no_progress",
            "looping,stalled",
            "",
            "a, b",
        ] {
            let signals: Signals = serde_json::from_str(&format!("{text:?}")).unwrap();
            assert_eq!(
                serde_json::to_string(&signals).unwrap(),
                format!("{text:?}")
            );
        }
        assert_eq!(
            Signals::parse("stalled,no_progress,x").0,
            [
                Signal::Stalled,
                Signal::NoProgress,
                Signal::Unknown("x".to_owned())
            ]
        );
        for text in [
            "conflict",
            "verification",
            "target_moved",
            "target_dirty",
            "target_untracked",
            "git",
        ] {
            let code = MergeCode::parse(text);
            assert!(!matches!(code, MergeCode::Unknown(_)), "{text}");
            assert_eq!(code.as_str(), text);
        }
        assert_eq!(
            MergeCode::parse("target_checked_out"),
            MergeCode::Unknown("target_checked_out".to_owned())
        );
    }
}
