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
}
