//! The payloads of a person's review of a finished run: comments on lines of its diff, and the
//! request that sends the run back to work with them.

use serde::{Deserialize, Serialize};

/// Which version of a file a comment's line number counts in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DiffSide {
    /// The run branch's version: an added or unchanged line.
    #[default]
    New,
    /// The base's version: a removed line.
    Old,
}

impl DiffSide {
    pub const fn as_str(self) -> &'static str {
        match self {
            DiffSide::New => "new",
            DiffSide::Old => "old",
        }
    }

    fn is_new(&self) -> bool {
        *self == DiffSide::New
    }
}

/// `REVIEW_COMMENT`: a person's comment on one line of a finished run's diff. It waits with the
/// run's other comments until changes are requested.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewComment {
    /// The file, as the diff names it (its path on the run's branch).
    pub path: String,
    /// The line, counted from 1, in the version of the file `side` names.
    pub line: u32,
    /// What the person wants changed, in their words.
    pub body: String,
    #[serde(default, skip_serializing_if = "DiffSide::is_new")]
    pub side: DiffSide,
}

impl ReviewComment {
    /// What the comment lacks to be one: a path, a line counted from 1, or words.
    pub fn missing(&self) -> Option<&'static str> {
        if self.path.trim().is_empty() {
            Some("a path")
        } else if self.line == 0 {
            Some("a line, counted from 1")
        } else if self.body.trim().is_empty() {
            Some("a body")
        } else {
            None
        }
    }
}

/// `CHANGES_REQUESTED`: a person sent a finished run back to work. The run is PENDING again;
/// its next implementation iteration is asked to make these changes, then reviewed and verified
/// as any other.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangesRequested {
    /// The comments made since the run last went back to work, in the order they were made.
    #[serde(default)]
    pub comments: Vec<ReviewComment>,
    /// What the person said about the change as a whole, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}
